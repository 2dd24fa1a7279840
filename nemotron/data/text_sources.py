"""Raw text sources of a blend: the datasets, their files, work units and documents.

A dataset is read as a sequence of documents from JSONL, JSONL.gz, Parquet or plain-text
files. Work is cut into units by bytes: JSONL files split at line boundaries, other formats
(which cannot be entered in the middle) go whole to the unit in which they start. The cut
depends only on the files and ``shards_per_dataset``, so the output does not depend on how
many workers run or in which order.
"""

from __future__ import annotations

import glob
import gzip
import math
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from nemo_runspec.errors import ConfigError, DataError
from nemo_runspec.refs import is_artifact_ref
from nemotron.data.bad_records import RecordError, SkipCounter, reject
from nemotron.data.splits import Split

_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".jsonl.gz": "jsonl.gz", ".json.gz": "jsonl.gz",
            ".parquet": "parquet", ".txt": "txt"}


class DatasetSpec(BaseModel):
    """One entry of ``data_prep.blend``."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    path: str = Field(description="a file, a glob, or an art:// reference to a dataset artifact")
    weight: Annotated[float, Field(ge=0)] = 1.0
    text_field: str = "text"
    split: Split | None = None
    glob: str = Field("**/*", description="files to take inside an artifact's directory")


@dataclass(frozen=True)
class SourceFile:
    dataset: str
    path: str
    format: str
    size: int
    input_uri: str  # the file itself, or the pinned artifact it came from

    def stamp(self) -> tuple[str, int, int]:
        """Path, size and modification time: what a prep's output fingerprint takes of a source
        (a changed file makes a new output; hashing every byte on each run would cost more)."""
        return self.path, self.size, os.stat(self.path).st_mtime_ns


@dataclass(frozen=True)
class Segment:
    """Bytes ``[start, end)`` of a file; for whole-file formats the whole file."""

    file: SourceFile
    start: int
    end: int


@dataclass(frozen=True)
class WorkUnit:
    dataset: DatasetSpec
    index: int
    segments: tuple[Segment, ...]

    @property
    def key(self) -> str:
        return f"{self.dataset.name}/part-{self.index:05d}"


def file_format(path: str) -> str | None:
    name = path.lower()
    for suffix in sorted(_FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return _FORMATS[suffix]
    return None


def resolve_files(spec: DatasetSpec, resolve_ref=None) -> list[SourceFile]:
    """The dataset's files in a fixed order; ``resolve_ref`` maps art:// refs to records."""
    input_uri = None
    if is_artifact_ref(spec.path):
        if resolve_ref is None:
            raise ConfigError(f"dataset {spec.name!r}: artifact references need a registry")
        record = resolve_ref(spec.path)
        pattern, input_uri = str(Path(record.path) / spec.glob), record.uri
    else:
        pattern = str(Path(spec.path).expanduser())
    candidates = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
    files = []
    for candidate in candidates:
        path = Path(candidate)
        if not path.is_file():
            continue
        fmt = file_format(path.name)
        if fmt is None:
            if glob.has_magic(pattern):
                continue  # globs skip what they cannot read (metadata.json, READMEs)
            raise ConfigError(f"dataset {spec.name!r}: {path}: unsupported file type",
                              hint="use .jsonl, .jsonl.gz, .parquet or .txt files")
        resolved = str(path.resolve())
        files.append(SourceFile(spec.name, resolved, fmt, path.stat().st_size, input_uri or resolved))
    if not files:
        raise ConfigError(f"dataset {spec.name!r}: path {spec.path!r} matches no readable files",
                          hint="check data_prep.blend[].path (a file, a glob such as /data/*.jsonl, or art://name:version)")
    return files


def describe_files(files: list[SourceFile]) -> str:
    """The inputs, for a message: the one file, or how many and the first."""
    return files[0].path if len(files) == 1 else f"{len(files)} files ({files[0].path}, ...)"


def plan_units(spec: DatasetSpec, files: list[SourceFile], shards: int) -> list[WorkUnit]:
    """Cut the dataset into at most ``shards`` units of about equal bytes; empty ones dropped."""
    total = sum(f.size for f in files)
    bounds = [math.ceil(total * k / shards) for k in range(shards + 1)]
    pieces: list[list[Segment]] = [[] for _ in range(shards)]
    offset = 0
    for file in files:
        start, end = offset, offset + file.size
        if file.format != "jsonl":
            pieces[_unit_of(bounds, start)].append(Segment(file, 0, file.size))
        else:
            for k in range(shards):
                lo, hi = max(start, bounds[k]), min(end, bounds[k + 1])
                if lo < hi:
                    pieces[k].append(Segment(file, lo - start, hi - start))
        offset = end
    return [WorkUnit(spec, k, tuple(segments)) for k, segments in enumerate(pieces) if segments]


def _unit_of(bounds: list[int], offset: int) -> int:
    for k in range(len(bounds) - 1):
        if offset < bounds[k + 1]:
            return k
    return len(bounds) - 2


def iter_documents(segment: Segment, text_field: str, on_error: str, skipped: SkipCounter) -> Iterator[str]:
    """The non-empty texts of a segment. Bad records raise DataError naming file and line,
    or with ``on_error == "skip"`` are counted in ``skipped`` under their reason."""
    if segment.file.format == "txt":
        texts = _txt(segment, on_error, skipped)
    elif segment.file.format == "parquet":
        texts = _parquet(segment, text_field, on_error, skipped)
    else:
        texts = _json_texts(segment, text_field, on_error, skipped)
    for text in texts:
        if text.strip():
            yield text
        else:
            skipped["empty_document"] += 1


def iter_records(segment: Segment, on_error: str, skipped: SkipCounter) -> Iterator[tuple[Any, Callable[[], str]]]:
    """Every record of a JSONL(.gz) or Parquet segment with a lazy ``file:line`` location."""
    if segment.file.format == "parquet":
        yield from _parquet_rows(segment)
        return
    if segment.file.format == "txt":
        raise DataError(f"{segment.file.path}: plain text has no records", hint="use JSONL or Parquet for this data")
    for line, where in _json_lines(segment):
        try:
            yield orjson.loads(line), where
        except orjson.JSONDecodeError as err:
            reason, message = _describe(line, err, where())
            reject(reason, message, on_error, skipped)


def _json_texts(segment: Segment, field: str, on_error: str, skipped: SkipCounter) -> Iterator[str]:
    for record, where in iter_records(segment, on_error, skipped):
        try:
            yield _text_of(record, field)
        except RecordError as err:
            reject(err.reason, f"{where()}: {err}", on_error, skipped)


def _json_lines(segment: Segment) -> Iterator[tuple[bytes, Callable[[], str]]]:
    """Non-blank lines of a JSONL byte range (or a whole .gz file) and where each one is."""
    path = segment.file.path
    if segment.file.format == "jsonl.gz":
        number = 0
        try:
            with gzip.open(path, "rb") as f:
                for number, line in enumerate(f, 1):
                    if line.strip():
                        yield line, lambda number=number: f"{path}:{number}"
        # A bad header is an OSError (gzip.BadGzipFile), a cut one an EOFError, a garbled body zlib.error.
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"{path}:{number + 1}: cannot read gzip stream: {err}",
                            hint="the file is damaged: fetch or compress it again") from None
        return
    with open(path, "rb") as f:
        pos = segment.start
        if pos > 0:
            f.seek(pos - 1)
            pos += len(f.readline()) - 1  # finish the line the previous unit owns
        for line in f:
            if pos >= segment.end:
                break
            start, pos = pos, pos + len(line)
            if line.strip():
                # Line numbers of a range that starts mid-file cost a scan: only for errors.
                yield line, lambda start=start: f"{path}:{_line_at(path, start)}"


def _open_parquet(path: str):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises ArrowInvalid and friends
        raise DataError(f"{path}: not a readable Parquet file: {err}") from None


def _parquet(segment: Segment, field: str, on_error: str, skipped: SkipCounter) -> Iterator[str]:
    path = segment.file.path
    parquet = _open_parquet(path)
    if field not in parquet.schema_arrow.names:
        raise DataError(f"{path}: no column {field!r} (columns: {', '.join(parquet.schema_arrow.names)})",
                        hint="set text_field of this dataset in data_prep.blend")
    row = 0
    for batch in parquet.iter_batches(columns=[field], batch_size=1024):
        for value in batch.column(0).to_pylist():
            row += 1
            if value is None:
                skipped["empty_document"] += 1
            elif not isinstance(value, str):
                reject("text_not_a_string", f"{path}:row {row}: {field!r} is {type(value).__name__}, not a string",
                       on_error, skipped)
            else:
                yield value


def _parquet_rows(segment: Segment) -> Iterator[tuple[Any, Callable[[], str]]]:
    path = segment.file.path
    parquet = _open_parquet(path)
    row = 0
    for batch in parquet.iter_batches(batch_size=256):
        for record in batch.to_pylist():
            row += 1
            yield record, lambda row=row: f"{path}:row {row}"


def _txt(segment: Segment, on_error: str, skipped: SkipCounter) -> Iterator[str]:
    path = segment.file.path
    raw = Path(path).read_bytes()
    try:
        yield raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        reject("not_utf8", f"{path}:{line}: not UTF-8 (byte {err.start})", on_error, skipped)


def _text_of(record: object, field: str) -> str:
    if not isinstance(record, dict):
        raise RecordError("bad_record", f"record is a JSON {type(record).__name__}, not an object")
    if field not in record:
        raise RecordError("missing_text_field", f"no {field!r} field (keys: {', '.join(list(record)[:8])})")
    text = record[field]
    if not isinstance(text, str):
        if text is None:
            return ""
        raise RecordError("bad_record", f"{field!r} is a JSON {type(text).__name__}, not a string")
    return text


def _describe(line: bytes, err: Exception, where: str) -> tuple[str, str]:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        return "not_utf8", f"{where}: not UTF-8 (byte {bad.start} of the line)"
    return "malformed_json", f"{where}: malformed JSON: {err}"


def _line_at(path: str, offset: int) -> int:
    """1-based line number of the byte at ``offset`` (only computed for error messages)."""
    count = 1
    with open(path, "rb") as f:
        remaining = offset
        while remaining > 0:
            chunk = f.read(min(remaining, 1 << 24))
            if not chunk:
                break
            count += chunk.count(b"\n")
            remaining -= len(chunk)
    return count
