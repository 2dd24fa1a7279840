"""Atomic file writes: a reader sees the old file or the whole new one, never a part.

Every write goes to a temporary file beside the target (the same directory, so the same file
system), is flushed to disk with fsync, and is renamed onto the target with ``os.replace``. A
writer killed at any moment leaves the old file (or none) plus at most a hidden ``*.tmp``.
Temporary names are unique per call, so threads and processes writing the same target never
share one; they are created with ``open(..., "x")``, so the file gets the umask's mode, as a
plain ``open`` would give it.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def temporary_path(path: Path) -> Path:
    """A fresh hidden name beside ``path`` for staging its next content."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")


class AtomicFile:
    """A binary file written under a temporary name; :meth:`commit` makes it ``path``.

    For content written piece by piece (shards, spools). As a context manager it commits on
    success and discards on an exception.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temporary_path(self.path)
        self._file = open(self.tmp, "xb")

    def write(self, data: bytes) -> int:
        return self._file.write(data)

    @property
    def stream(self):
        """The open file, for writers that take one (``shutil.copyfileobj``)."""
        return self._file

    def commit(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        self._file.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


@contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to by any means (``pq.write_table``);
    on leaving the block it is synced and renamed onto ``path``, or removed after an error."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(target)
    try:
        yield tmp
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with AtomicFile(path) as file:
        file.write(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], value: Any, *, indent: int | None = 1) -> None:
    """``value`` as JSON (``json.dumps`` with ``indent``) and a final newline."""
    write_text(path, json.dumps(value, indent=indent) + "\n")
