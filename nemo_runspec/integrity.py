"""Whether an artifact's files are still what its record says they were when it was published."""

from __future__ import annotations

from nemo_runspec import contents
from nemo_runspec.errors import ArtifactChangedError
from nemo_runspec.registry.record import METADATA_FILE, ArtifactRecord


def differences(record: ArtifactRecord, mode: contents.Mode = contents.FULL) -> list[contents.Difference]:
    """How ``record``'s files differ from its manifest (none recorded: nothing to compare)."""
    if record.contents is None or "://" in record.path:
        return []
    return contents.compare(record.contents, record.path, mode, exclude=(METADATA_FILE,))


def require_unchanged(record: ArtifactRecord, mode: contents.Mode = contents.QUICK) -> None:
    """Refuse an input whose files changed since it was published, naming the first difference."""
    found = differences(record, mode)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ArtifactChangedError(f"{record.uri} changed since it was published: {found[0]}{more} under {record.path}",
                                   hint=f"`nemotron artifact verify {record.ref} --content` lists every difference; "
                                        f"rebuild it (`nemotron artifact reproduce {record.ref} --log`) or use another version")
