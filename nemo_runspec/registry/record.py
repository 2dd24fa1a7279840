"""The registry's record of one artifact version: what a manifest file holds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nemo_runspec.contents import ContentManifest
from nemo_runspec.refs import URI_SCHEME

RECORD_SCHEMA = 1
METADATA_FILE = "metadata.json"  # the copy of a record beside its artifact's data


class Deletion(BaseModel):
    """When garbage collection removed a version's data, and how much it freed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: datetime
    bytes_freed: int = 0
    directory: str | None = None


class ArtifactRecord(BaseModel):
    """One published (``version`` set) or to-be-published (``version`` None) artifact.

    ``fields`` holds the typed fields of the artifact's class, ``metadata`` the free-form
    dict; ``inputs`` are the URIs it was made from, artifact references pinned to ``vN``.
    ``contents`` is what its files held when it was published; ``owned_dir`` the directory a
    nemotron step created for it (the only place garbage collection deletes). ``deleted`` is
    never stored in the version's file: the registry adds it on reading once gc removed the
    data (the record itself stays, so lineage stays whole).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_: int = Field(RECORD_SCHEMA, alias="schema")
    name: str
    version: int | None = Field(None, ge=1)
    type: str
    type_module: str | None = None
    path: str
    created_at: datetime
    producer: dict[str, Any] | None = None
    code_version: dict[str, Any] | None = None
    inputs: list[str] = Field(default_factory=list)
    fields: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    contents: ContentManifest | None = None
    owned_dir: str | None = None
    deleted: Deletion | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}:v{self.version}"

    @property
    def uri(self) -> str:
        return f"{URI_SCHEME}{self.ref}"

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2, exclude={"deleted"})


_TOP_LEVEL_FIELDS = ("name", "version", "type", "path", "ref", "uri", "created_at", "inputs")


def record_field(record: ArtifactRecord, field: str) -> Any:
    """A field of a record by name: a top-level attribute, a typed field or a metadata key.

    Dots reach into nested dicts and lists (``tokenizer.path``, ``splits.train.num_packs``).
    Raises KeyError naming the fields that exist.
    """
    head, _, rest = field.partition(".")
    if head in _TOP_LEVEL_FIELDS and not rest:
        return getattr(record, head)
    if head in record.fields:
        value = record.fields[head]
    elif head in record.metadata:
        value = record.metadata[head]
    else:
        known = sorted({*_TOP_LEVEL_FIELDS, *record.fields, *record.metadata})
        raise KeyError(f"{record.ref} ({record.type}) has no field {head!r}; fields: {', '.join(known)}")
    for part in rest.split(".") if rest else ():
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise KeyError(f"{record.ref}: field {field!r} has no part {part!r}")
    return value
