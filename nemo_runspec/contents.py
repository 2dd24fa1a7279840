"""What an artifact's files contain: a manifest of (path, size, digest) and one root digest.

A version's manifest is computed when it is published and stored in its record; :func:`compare`
tells later what changed under it. Digests are BLAKE2b-256 through hashlib, streamed in 1 MiB
blocks. Symbolic links are followed and digested as the files they point to: an import links
to a user's files, does not own them, and must still notice when they change.

Several files are hashed at once on a thread pool: hashlib releases the GIL while it hashes a
block, so the threads run side by side (``benchmarks/bench_digests.py`` measures the gain).

Each entry also keeps the file's mtime. It is not part of the root digest; it lets the quick
check (:data:`QUICK`) re-read only the files whose size or mtime moved, so checking an input
before a training costs a ``stat`` per file unless something was touched.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from nemo_runspec.errors import DataError

ALGORITHM = "blake2b-256"
_BLOCK = 1 << 20
# Below this many bytes in all, a thread pool costs more than it saves.
_POOL_MIN_BYTES = 8 << 20

Mode = Literal["full", "quick", "sizes"]
FULL: Mode = "full"      # every file read and digested
QUICK: Mode = "quick"    # sizes; files whose size or mtime moved are digested
SIZES: Mode = "sizes"    # sizes only


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str  # relative to the artifact's path, "/"-separated; the file's name for a one-file artifact
    size: int
    digest: str
    mtime_ns: int | None = None


class ContentManifest(BaseModel):
    """Every file of an artifact (sorted by path) and the digest over all of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    algorithm: str = ALGORITHM
    root: str
    files: tuple[FileEntry, ...]

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files)

    def same_content(self, other: ContentManifest) -> bool:
        return self.algorithm == other.algorithm and self.root == other.root


@dataclass(frozen=True)
class Difference:
    """One way a file differs from its manifest entry."""

    kind: Literal["missing", "extra", "size", "digest"]
    path: str
    detail: str = ""

    def __str__(self) -> str:
        words = {"missing": "missing", "extra": "not in the manifest", "size": "size changed",
                 "digest": "content changed"}[self.kind]
        return f"{self.path}: {words}" + (f" ({self.detail})" if self.detail else "")


def digest_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def digest_bytes(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def root_digest(files: Iterable[FileEntry]) -> str:
    digest = hashlib.blake2b(digest_size=32)
    for entry in sorted(files, key=lambda e: e.path):
        digest.update(f"{entry.path}\0{entry.size}\0{entry.digest}\n".encode())
    return digest.hexdigest()


def manifest_of(path: str | os.PathLike[str], exclude: Iterable[str] = (), workers: int | None = None) -> ContentManifest:
    """The manifest of a file, or of every file under a directory but the relative paths in
    ``exclude`` (the registry's own ``metadata.json``, written after the manifest)."""
    files = list_files(Path(path), set(exclude))
    for absolute, relative in files:
        if not absolute.exists():
            raise DataError(f"{absolute}: a link to a missing file ({relative} of {path})",
                            hint="an artifact's files must all be there when it is published")
    digests = _digest_all([absolute for absolute, _ in files], workers)
    entries = []
    for (absolute, relative), digest in zip(files, digests):
        stat = absolute.stat()
        entries.append(FileEntry(path=relative, size=stat.st_size, digest=digest, mtime_ns=stat.st_mtime_ns))
    return ContentManifest(root=root_digest(entries), files=tuple(entries))


def compare(manifest: ContentManifest, path: str | os.PathLike[str], mode: Mode = FULL,
            exclude: Iterable[str] = ()) -> list[Difference]:
    """How the files at ``path`` differ from ``manifest``: missing, extra, size, then content,
    in path order within each kind; empty when they match."""
    base = Path(path)
    if not base.exists():
        return [Difference("missing", str(base), "the artifact's path is gone")]
    present = {relative: absolute for absolute, relative in list_files(base, set(exclude)) if absolute.exists()}
    expected = {entry.path: entry for entry in manifest.files}
    differences = _missing_and_extra(expected.keys(), present.keys())
    to_read = []
    for relative in sorted(expected.keys() & present.keys()):
        entry, stat = expected[relative], present[relative].stat()
        if stat.st_size != entry.size:
            differences.append(Difference("size", relative, f"{entry.size} -> {stat.st_size} bytes"))
        elif mode == FULL or (mode == QUICK and stat.st_mtime_ns != entry.mtime_ns):
            to_read.append(relative)
    for relative, digest in zip(to_read, _digest_all([present[r] for r in to_read], None)):
        if digest != expected[relative].digest:
            differences.append(Difference("digest", relative))
    return differences


def differences_between(recorded: ContentManifest, other: ContentManifest) -> list[Difference]:
    """How ``other`` (a rebuild's manifest) differs from ``recorded``, as :func:`compare` says it."""
    if recorded.same_content(other):
        return []
    old, new = {e.path: e for e in recorded.files}, {e.path: e for e in other.files}
    found = _missing_and_extra(old.keys(), new.keys())
    for path in sorted(old.keys() & new.keys()):
        if old[path].size != new[path].size:
            found.append(Difference("size", path, f"{old[path].size} -> {new[path].size} bytes"))
        elif old[path].digest != new[path].digest:
            found.append(Difference("digest", path))
    return found


def _missing_and_extra(expected, present) -> list[Difference]:
    return ([Difference("missing", p) for p in sorted(expected - present)]
            + [Difference("extra", p) for p in sorted(present - expected)])


def list_files(path: Path, exclude: set[str] = frozenset()) -> list[tuple[Path, str]]:
    """(absolute, relative) of every regular file at ``path``, links followed, sorted by the
    relative path; a link cycle is walked once."""
    if not path.is_dir():
        return [(path, path.name)] if path.exists() else []
    found = [(p, r) for p, r in _walk(path, "", set()) if r not in exclude]
    return sorted(found, key=lambda item: item[1])


def _walk(directory: Path, prefix: str, seen: set[tuple[int, int]]) -> Iterator[tuple[Path, str]]:
    stat = directory.stat()
    if (stat.st_dev, stat.st_ino) in seen:
        return
    seen.add((stat.st_dev, stat.st_ino))
    with os.scandir(directory) as entries:
        for entry in entries:
            relative = f"{prefix}{entry.name}"
            if entry.is_dir():  # follows links
                yield from _walk(Path(entry.path), relative + "/", seen)
            elif entry.is_file() or entry.is_symlink():  # a dangling link is a file gone missing
                yield Path(entry.path), relative


def _digest_all(paths: list[Path], workers: int | None) -> list[str]:
    total = 0
    for path in paths:
        total += path.stat().st_size
    if len(paths) < 2 or total < _POOL_MIN_BYTES:
        return [digest_file(p) for p in paths]
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(digest_file, paths))
