"""The packed SFT Parquet format: what SFT prep writes, `data import sft` checks and SFT training reads.

A split is a folder of shards ``part-NNNNN.parquet``; each row of a shard is one pack:

- ``input_ids list<int32>``: the tokens of every sub-sequence, back to back;
- ``loss_mask list<uint8>``: 0/1, aligned with ``input_ids`` (``loss_mask[i]`` says whether
  token ``i`` is a target; Megatron-Bridge's form is this shifted left by one);
- ``seq_start_id list<int32>``: the start of every sub-sequence, first 0, no final end.

The schema metadata records the pack size (``nemotron.pack_size``) and the mask alignment
(``nemotron.loss_mask_alignment``). Shards written elsewhere may use wider ids and a bool
mask (:data:`ACCEPTED_TYPES`) and may lack the metadata. Shards are zstd with row groups of
500 rows, as Megatron-Bridge writes them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nemo_runspec import atomic
from nemo_runspec.errors import DataError

INPUT_IDS, LOSS_MASK, SEQ_START_ID = "input_ids", "loss_mask", "seq_start_id"
COLUMNS = (INPUT_IDS, LOSS_MASK, SEQ_START_ID)
WRITTEN_TYPES = {INPUT_IDS: "int32", LOSS_MASK: "uint8", SEQ_START_ID: "int32"}  # list value types
ACCEPTED_TYPES = {INPUT_IDS: ("int32", "int64"), LOSS_MASK: ("int8", "uint8", "bool"), SEQ_START_ID: ("int32", "int64")}
PACK_SIZE_KEY = b"nemotron.pack_size"
ALIGNMENT_KEY = b"nemotron.loss_mask_alignment"
LABEL_ALIGNMENT = "token"  # loss_mask[i] refers to input_ids[i]
ROW_GROUP_SIZE = 500
SHARD_PATTERN = "*.parquet"


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def shards(directory: Path) -> list[Path]:
    """A split's shards, in the order their packs are numbered."""
    return sorted(Path(directory).glob(SHARD_PATTERN))


def write_shard(path: Path, ids: np.ndarray, mask: np.ndarray, pack_lengths: np.ndarray, starts: np.ndarray,
                starts_per_pack: np.ndarray, pack_size: int) -> None:
    """Write one shard atomically: pack ``k`` holds the next ``pack_lengths[k]`` tokens of
    ``ids``/``mask`` and the next ``starts_per_pack[k]`` values of ``starts``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def lists(column: str, values: np.ndarray, counts: np.ndarray):
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        kind = WRITTEN_TYPES[column]
        return pa.ListArray.from_arrays(offsets, pa.array(np.asarray(values).astype(kind, copy=False), pa.type_for_alias(kind)))

    table = pa.table({
        INPUT_IDS: lists(INPUT_IDS, ids, pack_lengths),
        LOSS_MASK: lists(LOSS_MASK, mask, pack_lengths),
        SEQ_START_ID: lists(SEQ_START_ID, starts, starts_per_pack),
    }).replace_schema_metadata({ALIGNMENT_KEY: LABEL_ALIGNMENT, PACK_SIZE_KEY: str(pack_size)})
    with atomic.replacing(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP_SIZE)


def check_schema(file: Path, schema) -> None:
    """``schema`` (a ``pyarrow.Schema``) has the three columns, each a list of an accepted type."""
    import pyarrow as pa

    for column, allowed in ACCEPTED_TYPES.items():
        if column not in schema.names:
            raise DataError(f"{file}: no column {column!r} (packed SFT data has {', '.join(COLUMNS)}; "
                            f"found: {', '.join(schema.names) or 'none'})")
        kind = schema.field(column).type
        is_list = pa.types.is_list(kind) or pa.types.is_large_list(kind)
        if not is_list or str(kind.value_type) not in allowed:
            found = f"list<{kind.value_type}>" if is_list else str(kind)
            raise DataError(f"{file}: column {column!r} is {found}, expected list<{'|'.join(allowed)}>")


def recorded_pack_size(file: Path, schema) -> int | None:
    """The pack size a shard's metadata records; None for a shard written without it."""
    recorded = (schema.metadata or {}).get(PACK_SIZE_KEY)
    if recorded is None:
        return None
    try:
        return int(recorded)
    except ValueError:
        raise DataError(f"{file}: Parquet metadata {PACK_SIZE_KEY.decode()} is "
                        f"{recorded.decode(errors='replace')!r}, not an integer") from None
