"""The typed artifact base class.

A subclass declares its typed fields as Pydantic fields; they are stored in the registry's
record and in ``metadata.json`` beside the data, and are read back with their types by
``from_uri`` / ``load``. Every subclass registers itself by class name, so that
``Artifact.from_uri`` on the base class returns an instance of the stored type.
"""

from __future__ import annotations

import importlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, computed_field, create_model

from nemo_runspec import atomic
from nemo_runspec.artifacts.active import current_tracking
from nemo_runspec.errors import CorruptRecordError, TypeMismatchError
from nemo_runspec.provenance import CodeVersion, Producer
from nemo_runspec.registry.record import METADATA_FILE, ArtifactRecord

if TYPE_CHECKING:
    from nemo_runspec.artifacts.tracking import ArtifactTracking

# Class name -> the most recently defined artifact class of that name.
_ARTIFACT_TYPES: dict[str, type[Artifact]] = {}


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Artifact(BaseModel):
    """A versioned output (data set, checkpoint, ...) with typed metadata and lineage."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    path: Path
    name: str | None = None
    version: int | None = Field(None, ge=1)
    created_at: datetime = Field(default_factory=_utc_now)
    producer: Producer | None = None
    code_version: CodeVersion | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _ARTIFACT_TYPES[cls.__name__] = cls

    @computed_field  # type: ignore[prop-decorator]
    @property
    def type(self) -> str:
        return type(self).__name__

    # -- what a subclass may override --------------------------------------------------------

    def get_input_uris(self) -> list[str]:
        """URIs this artifact was made from: ``art://name:ver`` references, files, URLs."""
        return []

    def default_name(self) -> str:
        """The registry name used when ``log_artifact`` is given none."""
        return self.type

    # -- typed fields <-> records --------------------------------------------------------------

    @classmethod
    def typed_field_names(cls) -> list[str]:
        return [f for f in cls.model_fields if f not in Artifact.model_fields]

    def to_record(self, name: str, inputs: list[str]) -> ArtifactRecord:
        module = type(self).__module__
        return ArtifactRecord(
            name=name,
            version=None,
            type=self.type,
            type_module=None if module == "__main__" else module,
            path=str(Path(os.path.abspath(self.path))),
            created_at=self.created_at,
            producer=self.producer.model_dump(mode="json") if self.producer else None,
            code_version=self.code_version.model_dump(mode="json") if self.code_version else None,
            inputs=inputs,
            fields=self.model_dump(mode="json", include=set(self.typed_field_names())),
            metadata=self.model_dump(mode="json", include={"metadata"})["metadata"],
        )

    @classmethod
    def from_record(cls, record: ArtifactRecord) -> Self:
        """An instance of the record's type; ``cls`` must be that type or one of its bases."""
        target = _class_for(record, cls)
        known = set(target.typed_field_names())
        data = {
            "path": record.path,
            "name": record.name,
            "version": record.version,
            "created_at": record.created_at,
            "producer": record.producer,
            "code_version": record.code_version,
            "metadata": record.metadata,
            # Fields the class no longer declares are left out rather than failing the load.
            **{k: v for k, v in record.fields.items() if k in known},
        }
        try:
            return target.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "record"
            raise TypeMismatchError(
                f"{_label(record)} cannot be loaded as {target.__name__}: field {where!r}: {first['msg']}",
                hint=f"the stored metadata lacks what {target.__name__} requires; load it as {record.type}",
            ) from None

    # -- the registry ------------------------------------------------------------------------

    @classmethod
    def from_uri(cls, uri: str, tracking: ArtifactTracking | None = None) -> Self:
        """Resolve ``art://name:version`` (or ``name:version``) through ``tracking``, by
        default the process's active one."""
        return cls.from_record((tracking or current_tracking()).resolve(uri))

    # -- metadata.json beside the data -------------------------------------------------------

    @property
    def metadata_path(self) -> Path:
        return Path(self.path) / METADATA_FILE

    def save_metadata(self, record: ArtifactRecord) -> Path | None:
        """Write ``record`` to ``<path>/metadata.json`` atomically; None when path is a file."""
        directory = Path(self.path)
        if directory.exists() and not directory.is_dir():
            return None  # a single-file artifact: the registry's record is the only copy
        atomic.write_text(self.metadata_path, record.to_json())
        return self.metadata_path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Read the artifact described by ``<path>/metadata.json``."""
        file = Path(path) / METADATA_FILE if Path(path).is_dir() else Path(path)
        try:
            record = ArtifactRecord.model_validate_json(file.read_bytes())
        except FileNotFoundError:
            raise CorruptRecordError(f"{file}: no {METADATA_FILE} found") from None
        except (ValidationError, json.JSONDecodeError) as err:
            raise CorruptRecordError(f"{file}: corrupt {METADATA_FILE}: {err.errors()[0]['msg'] if isinstance(err, ValidationError) else err}") from None
        return cls.from_record(record)


def artifact_class(type_name: str) -> type[Artifact] | None:
    """The registered artifact class of that name, if one was defined in this process."""
    return _ARTIFACT_TYPES.get(type_name)


def _class_for(record: ArtifactRecord, requested: type[Artifact]) -> type[Artifact]:
    if requested.__name__ == record.type:
        return requested
    stored = _ARTIFACT_TYPES.get(record.type) or _import_type(record)
    if requested is Artifact:
        return stored or _stand_in(record)
    if stored is None or not issubclass(stored, requested):
        raise TypeMismatchError(
            f"{_label(record)} is a {record.type}, not a {requested.__name__}",
            hint=f"load it with {record.type}.from_uri(...) or Artifact.from_uri(...)",
        )
    return stored


def _import_type(record: ArtifactRecord) -> type[Artifact] | None:
    if record.type_module:
        try:
            importlib.import_module(record.type_module)
        except ImportError:
            return None
    return _ARTIFACT_TYPES.get(record.type)


def _stand_in(record: ArtifactRecord) -> type[Artifact]:
    """A class named after the stored type whose typed fields are untyped (Any)."""
    fields: dict[str, Any] = {name: (Any, None) for name in record.fields}
    stand_in = create_model(record.type, __base__=Artifact, **fields)
    del _ARTIFACT_TYPES[record.type]  # never let a stand-in shadow the real class later
    return stand_in


def _label(record: ArtifactRecord) -> str:
    return record.uri if record.version else record.name
