"""Where an import goes and what it logs beside the input: the tracking, the artifact's own
small directory of links, and the record of the source.

PATH is never written to: the artifact's directory is ``<NEMOTRON_RUNS_ROOT or runs>/<name>/
<fingerprint>`` for models, ``<NEMOTRON_DATA_ROOT or data>/<name>/<fingerprint>`` for data,
holding symbolic links to the imported files (and the few files an import writes). That is
where the registry's ``metadata.json`` goes (it would otherwise overwrite a distributed
checkpoint's own ``metadata.json``), and it gives every import the layout the stages read.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from nemo_runspec.artifacts import ArtifactTracking, setup_artifact_tracking
from nemotron.data.files import file_sha256
from nemotron.stages.step import check_name_free

# The registry writes it into the artifact's directory when it logs: its presence means logged.
MARKER = "metadata.json"


def models_root() -> str:
    return os.environ.get("NEMOTRON_RUNS_ROOT") or "runs"


def data_root() -> str:
    return os.environ.get("NEMOTRON_DATA_ROOT") or "data"


def tracking_for(root: str | os.PathLike[str] | None, name: str, type_name: str) -> ArtifactTracking:
    """The registry at ``root`` (default: the environment's), once ``name`` is known to be free
    for ``type_name``: checked before the input is, so a wrong --name fails at once."""
    tracking = setup_artifact_tracking({"root": str(root)} if root else None)
    check_name_free(tracking, name, type_name)
    return tracking


def link_directory(directory: Path, links: dict[str, Path], files: dict[str, str] | None = None) -> None:
    """Make ``directory`` hold ``links`` (name -> target) and ``files`` (name -> text), all at
    once (a staging directory renamed into place); one already there is kept."""
    if directory.is_dir():  # the same import before, not logged: same content by construction
        return
    staging = directory.with_name(f".{directory.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for link, target in links.items():
        (staging / link).symlink_to(target)
    for file, text in (files or {}).items():
        (staging / file).write_text(text, encoding="utf-8")
    try:
        os.rename(staging, directory)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not directory.is_dir():
            raise
        # else a concurrent import of the same thing got there first


def source_info(given: Path, resolved: Path) -> Any:
    """The imported PATH as the data artifact's source (with its size and sha256 when a file)."""
    from nemotron.kit.artifacts import SourceInfo

    if resolved.is_file():
        return SourceInfo(name="imported", uri=str(given), num_bytes=resolved.stat().st_size, sha256=file_sha256(resolved))
    return SourceInfo(name="imported", uri=str(given))
