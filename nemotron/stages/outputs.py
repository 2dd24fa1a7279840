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

from nemo_runspec.artifacts import Artifact, ArtifactTracking
from nemo_runspec.errors import ArtifactNotFoundError

A = TypeVar("A", bound=Artifact)


def fingerprint(identity: Any) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def output_dir(root: str | Path, name: str, identity: Any) -> tuple[Path, str]:
    digest = fingerprint(identity)
    return (Path(root) / name / digest).absolute(), digest


def already_logged(tracking: ArtifactTracking, cls: type[A], name: str, directory: Path, digest: str,
                   marker: str) -> A | None:
    """The newest version of ``name`` that was made into ``directory`` with this fingerprint,
    if ``directory/marker`` still exists; None otherwise.

    Every version is looked at, not only the latest: a run that an older version already holds
    must not run again into that version's directory (it would rewrite published files)."""
    try:
        latest = tracking.resolve(f"{name}:latest")
    except ArtifactNotFoundError:
        return None
    if not (directory / marker).exists():
        return None
    for version in range(latest.version, 0, -1):
        record = latest if version == latest.version else tracking.resolve(f"{name}:v{version}", deleted_ok=True)
        if record.deleted is not None:  # gc removed its directory; a new run may have made it again
            continue
        if record.metadata.get("fingerprint") == digest and str(record.path).startswith(str(directory)):
            return cls.from_record(record)
    return None
