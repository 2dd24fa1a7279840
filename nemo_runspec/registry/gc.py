"""Garbage collection of the manifest registry: delete the data nothing refers to, keep every record.

A version is kept when it is among the last ``keep_last`` of its name (``latest`` always is),
an alias points at it, or a kept version names it as an input (transitively, so a kept
model keeps its whole lineage). The rest lose their data directory; their records stay, with
a deletion mark beside them (``<name>/deleted/vN.json``), so lineage still prints whole and
reading such a version's data is a one-line error.

Only a version's ``owned_dir`` is ever deleted: the directory a nemotron step created for it.
Artifacts logged by hand and imports of a user's files point at paths gc does not own and
are left alone (an import's own directory holds links, which are removed, never followed).

Racing publishers: only versions that existed when gc began are candidates. Marking and the
check that nothing new refers to a candidate happen under the registry's lock held
exclusively, and a publisher checks its inputs' marks and writes its record under the same
lock held shared: a publisher either sees the mark (and refuses the deleted input) or its
record is seen by gc (which then keeps the input). Directories are removed after that.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from nemo_runspec.errors import NemotronError
from nemo_runspec.refs import ArtifactRef, is_artifact_ref
from nemo_runspec.registry.manifest import ManifestRegistry
from nemo_runspec.registry.record import ArtifactRecord, Deletion

GC_LOCK = ".gc.lock"


class GcBusyError(NemotronError):
    default_hint = "wait for the other `nemotron artifact gc` to finish"


@dataclass(frozen=True)
class Candidate:
    record: ArtifactRecord
    directory: Path
    size: int


@dataclass
class GcPlan:
    delete: list[Candidate] = field(default_factory=list)
    left: list[tuple[ArtifactRecord, str]] = field(default_factory=list)  # unreferenced, but not ours to delete
    kept: int = 0
    listed: dict[str, int] = field(default_factory=dict)  # each name's latest version when gc listed them

    @property
    def bytes(self) -> int:
        return sum(c.size for c in self.delete)


def plan(registry: ManifestRegistry, keep_last: int = 1) -> GcPlan:
    """What a gc would delete now, what it would leave although unreferenced, and why."""
    listed = {name: registry.latest_version(name) for name in registry.names()}  # first: see collect
    records = {r.uri: r for name, latest in listed.items() for r in _versions(registry, name, latest)}
    kept = _kept(registry, listed, records, max(keep_last, 1))
    result = GcPlan(kept=len(kept), listed=listed)
    protected = [Path(p) for uri in kept for p in (records[uri].path, records[uri].owned_dir) if p]
    for uri, record in records.items():
        if uri in kept or record.deleted is not None:
            continue
        if not record.owned_dir:
            result.left.append((record, "its path was not made by a nemotron step"))
            continue
        directory = Path(record.owned_dir)
        shared = next((p for p in protected if _overlaps(p, directory)), None)
        if shared is not None:
            result.left.append((record, f"its directory holds data of a kept version ({shared})"))
        elif not directory.exists():
            result.delete.append(Candidate(record, directory, 0))
        else:
            result.delete.append(Candidate(record, directory, _disk_bytes(directory)))
    return result


def collect(registry: ManifestRegistry, keep_last: int = 1,
            before_marking: Callable[[GcPlan], None] | None = None) -> GcPlan:
    """Delete the data of :func:`plan`'s candidates; return what was deleted. ``before_marking``
    runs between planning and marking (tests use it to publish at the worst moment)."""
    with _only_one_gc(registry):
        planned = plan(registry, keep_last)
        if before_marking is not None:
            before_marking(planned)
        now = datetime.now(timezone.utc)
        with registry.lock(exclusive=True):
            for c in planned.delete:
                registry.mark_deleted(c.record.name, c.record.version,
                                      Deletion(at=now, bytes_freed=c.size, directory=str(c.directory)))
            wanted = _named_by_newer(registry, planned.listed)
            for c in [c for c in planned.delete if c.record.uri in wanted]:
                registry.unmark_deleted(c.record.name, c.record.version)
            planned.delete = [c for c in planned.delete if c.record.uri not in wanted]
        for c in planned.delete:
            _remove(c.directory)
        return planned


@contextmanager
def _only_one_gc(registry: ManifestRegistry) -> Iterator[None]:
    registry.root.mkdir(parents=True, exist_ok=True)
    with open(registry.root / GC_LOCK, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EAGAIN, errno.EACCES):
                raise GcBusyError(f"another gc is running on registry {registry.root}") from None
            raise
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _versions(registry: ManifestRegistry, name: str, latest: int) -> Iterator[ArtifactRecord]:
    for version in range(1, latest + 1):
        yield registry.read_version(name, version)


def _kept(registry: ManifestRegistry, listed: dict[str, int], records: dict[str, ArtifactRecord],
          keep_last: int) -> set[str]:
    roots = set()
    for name, latest in listed.items():
        roots |= {f"art://{name}:v{v}" for v in range(max(1, latest - keep_last + 1), latest + 1)}
        roots |= {f"art://{name}:v{v}" for v in registry.aliases(name).values()}
    kept, stack = set(), [uri for uri in roots if uri in records]
    while stack:
        uri = stack.pop()
        if uri in kept:
            continue
        kept.add(uri)
        stack += [link for link in records[uri].inputs if link in records]
    return kept


def _named_by_newer(registry: ManifestRegistry, known: dict[str, int]) -> set[str]:
    """Inputs of every version published since gc listed the registry (and what they name in turn)."""
    wanted: set[str] = set()
    for name in registry.names():
        for version in range(known.get(name, 0) + 1, registry.latest_version(name) + 1):
            wanted |= set(_pinned_inputs(registry, registry.read_version(name, version), set()))
    return wanted


def _pinned_inputs(registry: ManifestRegistry, record: ArtifactRecord, seen: set[str]) -> Iterator[str]:
    for uri in record.inputs:
        if uri in seen or not is_artifact_ref(uri):
            continue
        seen.add(uri)
        ref = ArtifactRef.parse(uri)
        if ref.version is None:
            continue
        yield uri
        try:
            yield from _pinned_inputs(registry, registry.read_version(ref.name, ref.version), seen)
        except NemotronError:
            continue


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def _disk_bytes(directory: Path) -> int:
    total = 0
    for base, _dirs, files in os.walk(directory):  # links are not followed: their targets stay
        for name in files:
            total += os.lstat(os.path.join(base, name)).st_size
    return total


def _remove(directory: Path) -> None:
    if not directory.exists():
        return
    # Renamed first: a half-removed directory never looks like a step's output.
    doomed = directory.with_name(f".{directory.name}.gc-{uuid.uuid4().hex[:8]}")
    os.rename(directory, doomed)
    shutil.rmtree(doomed)
