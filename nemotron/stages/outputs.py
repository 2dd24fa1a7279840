"""Content-addressed output directories shared by the stage steps.

A step's output goes to ``<root>/<name>/<fingerprint>``, the fingerprint hashing everything
the output depends on. The same command after a crash finds the same directory (and resumes);
a step whose latest logged version already describes that directory is not logged again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar

from nemo_runspec.artifacts import Artifact, current_tracking
from nemo_runspec.errors import ArtifactNotFoundError

A = TypeVar("A", bound=Artifact)


def fingerprint(identity: Any) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def output_dir(root: str | Path, name: str, identity: Any) -> tuple[Path, str]:
    digest = fingerprint(identity)
    return (Path(root) / name / digest).absolute(), digest


def already_logged(cls: type[A], name: str, directory: Path, digest: str, marker: str) -> A | None:
    """The latest version of ``name`` if it was made into ``directory`` with this fingerprint
    and ``directory/marker`` still exists; None otherwise."""
    try:
        record = current_tracking().resolve(f"{name}:latest")
    except ArtifactNotFoundError:
        return None
    if record.metadata.get("fingerprint") != digest or not (directory / marker).exists():
        return None
    if not str(record.path).startswith(str(directory)):
        return None
    return cls.from_record(record)
