"""Megatron-Core's indexed dataset format (.bin/.idx), written as a stream.

Format (megatron/core/datasets/indexed_dataset.py): ``.bin`` is the token arrays back to back;
``.idx`` is magic, version, dtype code, sequence and document counts, then int32 sequence
lengths, int64 byte pointers and int64 document indices. Writing it here rather than through
``IndexedDatasetBuilder`` keeps torch and megatron (5 s of imports) out of every data-prep
worker; the tests read every shard back with Megatron-Core's own ``IndexedDataset``.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nemo_runspec.atomic import AtomicFile
from nemo_runspec.errors import DataError
from nemotron.data.splits import SPLITS

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
DTYPE_CODES = {
    np.dtype(np.uint8): 1, np.dtype(np.int8): 2, np.dtype(np.int16): 3, np.dtype(np.int32): 4,
    np.dtype(np.int64): 5, np.dtype(np.float64): 6, np.dtype(np.float32): 7, np.dtype(np.uint16): 8,
}
CODE_DTYPES = {code: dtype for dtype, code in DTYPE_CODES.items()}


def token_dtype(vocab_size: int) -> np.dtype:
    """The dtype Megatron picks for a vocabulary: uint16 below 65500 tokens, else int32."""
    return np.dtype(np.uint16) if vocab_size < 65500 else np.dtype(np.int32)


class IndexedDatasetWriter:
    """Appends documents (one sequence each) to ``prefix.bin``; ``commit`` writes ``prefix.idx``.

    Both files are written atomically (``nemo_runspec.atomic``), the ``.idx`` last, so a shard
    that has an ``.idx`` is complete.
    """

    def __init__(self, prefix: Path, dtype: np.dtype):
        self.prefix = Path(prefix)
        self.dtype = np.dtype(dtype)
        self._bin = AtomicFile(self.prefix.with_name(self.prefix.name + ".bin"))
        self._lengths: list[np.ndarray] = []
        self.num_tokens = 0

    def add_documents(self, tokens: np.ndarray, lengths: np.ndarray) -> None:
        """``tokens``: the documents' tokens concatenated; ``lengths``: tokens per document."""
        self._bin.write(tokens.astype(self.dtype, copy=False).tobytes())
        self._lengths.append(lengths.astype(np.int32, copy=False))
        self.num_tokens += int(tokens.size)

    @property
    def num_documents(self) -> int:
        return sum(len(lengths) for lengths in self._lengths)

    def commit(self) -> None:
        self._bin.commit()
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int32)
        pointers = np.zeros(len(lengths), np.int64)
        np.cumsum(lengths[:-1].astype(np.int64) * self.dtype.itemsize, out=pointers[1:])
        documents = np.arange(len(lengths) + 1, dtype=np.int64)
        with AtomicFile(self.prefix.with_name(self.prefix.name + ".idx")) as idx:
            idx.write(MAGIC)
            idx.write(struct.pack("<Q", VERSION))
            idx.write(struct.pack("<B", DTYPE_CODES[self.dtype]))
            idx.write(struct.pack("<Q", len(lengths)))
            idx.write(struct.pack("<Q", len(documents)))
            idx.write(lengths.tobytes(order="C"))
            idx.write(pointers.tobytes(order="C"))
            idx.write(documents.tobytes(order="C"))

    def abort(self) -> None:
        self._bin.discard()


@dataclass(frozen=True)
class IndexHeader:
    dtype: np.dtype
    num_sequences: int
    num_documents: int
    num_tokens: int


def read_index(prefix: str | Path) -> IndexHeader:
    """Validate ``prefix.idx`` against ``prefix.bin`` and return its header and token count."""
    idx, bin_ = Path(f"{prefix}.idx"), Path(f"{prefix}.bin")
    try:
        with open(idx, "rb") as f:
            head = f.read(len(MAGIC) + 8 + 1 + 8 + 8)
            if len(head) < len(MAGIC) + 25 or head[: len(MAGIC)] != MAGIC:
                raise DataError(f"{idx}: not a Megatron index (bad magic or truncated header)")
            version, code, sequences, documents = struct.unpack("<QBQQ", head[len(MAGIC):])
            if version != VERSION or code not in CODE_DTYPES:
                raise DataError(f"{idx}: unsupported index version {version} or dtype code {code}")
            lengths = np.fromfile(f, dtype=np.int32, count=sequences)
            expected = len(MAGIC) + 25 + sequences * 12 + documents * 8
        if len(lengths) != sequences or idx.stat().st_size != expected:
            raise DataError(f"{idx}: truncated index ({idx.stat().st_size} bytes, expected {expected})")
        dtype = CODE_DTYPES[code]
        tokens = int(lengths.sum(dtype=np.int64))
        if not bin_.is_file() or bin_.stat().st_size != tokens * dtype.itemsize:
            size = bin_.stat().st_size if bin_.is_file() else "missing"
            raise DataError(f"{bin_}: size {size} does not match its index ({tokens * dtype.itemsize} bytes)")
    except FileNotFoundError as err:
        raise DataError(f"{err.filename}: shard file missing") from None
    return IndexHeader(dtype=dtype, num_sequences=int(sequences), num_documents=int(documents) - 1, num_tokens=tokens)


def check_shards(blend_path: str | Path) -> None:
    """Every shard a blend.json names is whole: its ``.bin`` and ``.idx`` exist, the index
    parses and the ``.bin`` is as long as the index says. The driver checks this before any
    training process starts: a damaged shard is then one line naming it, instead of an error
    (and Megatron-Core's ``IndexedDataset.__del__`` noise) from every process."""
    path = Path(blend_path)
    try:
        blend = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: blend file missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(blend, dict):
        raise DataError(f"{path}: expected per-split blend lists, found a JSON {type(blend).__name__}")
    for split in SPLITS:
        for prefix in blend_prefixes(blend.get(split) or []):
            try:
                read_index(prefix)
            except DataError as err:
                raise DataError(f"{err} (a {split} shard of {path})",
                                hint="prepare or import the data again, or point run.data at another version") from None


def blend_prefixes(entries: list) -> list[str]:
    """The shard prefixes of a Megatron blend list, ``[weight, prefix, ...]`` or ``[prefix, ...]``,
    told apart as Megatron-Core's ``get_blend_from_list`` does (without importing it)."""
    if len(entries) % 2 == 0 and all(_is_number(weight) for weight in entries[0::2]):
        entries = entries[1::2]
    return [str(prefix).strip() for prefix in entries]


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
