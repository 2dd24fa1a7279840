"""One record of ours <-> one W&B artifact version.

::

    ours                                W&B
    record.name                         artifact name (both allow A-Z a-z 0-9 . _ -)
    record.type (the class name)        artifact type
    record.fields (typed fields)        artifact.metadata, top level, so the W&B UI shows them
    version, ref, producer,             artifact.metadata["nemotron"]: W&B numbers the versions
      code_version, path, inputs,         of a name itself (from v0, per project), so our
      created_at, type_module, metadata   numbering travels beside its own
    vN                                  alias "nemotron-vN" (W&B reserves "vN" for its numbers)
    latest, named aliases               the same aliases
    the whole record as JSON            file metadata.json, uploaded (it is small)
    record.path (the data)              reference entries under "data/": file:// or s3:// URIs,
                                          never uploaded
    record.inputs                       run.use_artifact(input) in the run that logs it, online
                                          only (offline W&B cannot; the manifest keeps lineage)
    record.contents (file manifest)     artifact.metadata["nemotron"]["contents"]: a version
                                          fetched from W&B is verified as one from the manifest

Reading back, a W&B artifact becomes an ``ArtifactRecord``: type from ``artifact.type``, fields
from its metadata, path from its reference entries (else the metadata); an artifact that
nemotron did not log gets version = W&B's number + 1 and no inputs, so ``vN`` of such a name
means W&B's ``v(N-1)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from nemo_runspec.registry.record import ArtifactRecord

METADATA_KEY = "nemotron"          # our bookkeeping inside a W&B artifact's metadata
METADATA_FILE = "metadata.json"    # the record, uploaded as a file of the artifact
DATA_ENTRY = "data"                # reference entries: "data" (a file) or "data/<rel>" (a dir)
VERSION_ALIAS_PREFIX = "nemotron-v"
_VERSION_ALIAS = re.compile(re.escape(VERSION_ALIAS_PREFIX) + r"[0-9]+")


def version_alias(version: int) -> str:
    return f"{VERSION_ALIAS_PREFIX}{version}"


def is_version_alias(alias: str) -> bool:
    """Whether ``alias`` has the form of our version aliases (a named alias must not)."""
    return _VERSION_ALIAS.fullmatch(alias) is not None


def wandb_metadata(record: ArtifactRecord) -> dict[str, Any]:
    """The W&B metadata of a record: typed fields on top, our bookkeeping under "nemotron"."""
    ours = {
        "version": record.version,
        "ref": record.ref,
        "producer": record.producer,
        "code_version": record.code_version,
        "path": record.path,
        "inputs": record.inputs,
        "created_at": record.created_at.isoformat(),
        "type_module": record.type_module,
        "metadata": record.metadata,
        "fields": sorted(record.fields),
        "contents": record.contents.model_dump(mode="json") if record.contents else None,
        "owned_dir": record.owned_dir,
    }
    return {**record.fields, METADATA_KEY: ours}


def reference_uri(path: str) -> str:
    return path if "://" in path else "file://" + path


def record_from_wandb(artifact: Any, name: str, wandb_path: str) -> ArtifactRecord:
    """Our record for a W&B artifact version (``artifact`` as ``wandb.Api().artifact`` returns
    it; ``wandb_path`` is where it was found, ``entity/project/name:vK``)."""
    metadata = dict(artifact.metadata or {})
    ours = metadata.pop(METADATA_KEY, None)
    if isinstance(ours, Mapping):  # logged by nemotron: our version and lineage are in there
        fields = {k: metadata[k] for k in ours.get("fields", metadata) if k in metadata}
        return ArtifactRecord(
            name=name,
            version=int(ours["version"]),
            type=artifact.type,
            type_module=ours.get("type_module"),
            path=_path_from_entries(artifact) or str(ours.get("path") or ""),
            created_at=ours.get("created_at") or _created_at(artifact),
            producer=ours.get("producer"),
            code_version=ours.get("code_version"),
            inputs=list(ours.get("inputs") or []),
            fields=fields,
            metadata=dict(ours.get("metadata") or {}),
            contents=ours.get("contents"),
            owned_dir=ours.get("owned_dir"),
        )
    # Logged by something else: W&B's own numbering, shifted to start at 1 as ours does.
    return ArtifactRecord(
        name=name,
        version=_wandb_number(artifact) + 1,
        type=artifact.type,
        path=_path_from_entries(artifact) or str(metadata.get("path") or f"wandb-artifact://{wandb_path}"),
        created_at=_created_at(artifact),
        fields=metadata,
    )


def _path_from_entries(artifact: Any) -> str | None:
    """The data path behind the reference entries: "data" -> its URI, "data/<rel>" -> minus rel."""
    for entry_path, entry in artifact.manifest.entries.items():
        ref = getattr(entry, "ref", None)
        if not ref or not (entry_path == DATA_ENTRY or entry_path.startswith(DATA_ENTRY + "/")):
            continue
        rel = entry_path[len(DATA_ENTRY) + 1:]
        if rel and ref.endswith("/" + rel):
            ref = ref[: -len(rel) - 1]
        return ref[len("file://"):] if ref.startswith("file://") else ref
    return None


def _created_at(artifact: Any) -> datetime:
    return getattr(artifact, "created_at", None) or datetime.now(timezone.utc)


def _wandb_number(artifact: Any) -> int:
    return int(str(artifact.version).lstrip("v"))
