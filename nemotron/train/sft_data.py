"""SFT batches from packed Parquet: every pack one sample, its sub-sequences kept apart.

Follows the label alignment the SFT data prep writes (``loss_mask[i]`` refers to
``input_ids[i]``): at position ``j`` of a sub-sequence ``[s, e)`` the label is
``input_ids[j+1]`` with mask ``loss_mask[j+1]``; the last position of every sub-sequence and
the padding up to ``seq_length`` predict nothing. Sub-sequences never see each other: on CPU
the attention mask is block-diagonal causal and positions restart at 0 in each one; on GPUs
with TransformerEngine the same boundaries also go to Megatron-Core as ``PackedSeqParams``
(THD). A hybrid model's Mamba layers need the boundaries everywhere (their scan and conv
restart at each sub-sequence, ``seq_idx``): without TransformerEngine they go as
``PackedSeqParams`` of format ``sbhd``, which the attention leaves to the mask.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from nemotron.data.packed_parquet import COLUMNS, shards


class PackedSplit:
    """The packs of one split, read from its Parquet shards (memory-mapped)."""

    def __init__(self, directory: Path):
        import pyarrow as pa
        import pyarrow.parquet as pq

        files = shards(directory)
        if not files:
            raise FileNotFoundError(f"{directory}: no Parquet shards")
        table = pa.concat_tables([pq.read_table(path, columns=list(COLUMNS), memory_map=True) for path in files])
        self.input_ids, self.loss_mask, self.starts = (table.column(c).combine_chunks() for c in COLUMNS)

    def __len__(self) -> int:
        return len(self.input_ids)

    def pack(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (self.input_ids[index].values.to_numpy(), self.loss_mask[index].values.to_numpy(),
                self.starts[index].values.to_numpy())


def pack_sample(ids: np.ndarray, mask: np.ndarray, starts: np.ndarray, seq_length: int, pad_id: int) -> dict[str, torch.Tensor]:
    """Tokens, labels, label mask, positions and the block-diagonal causal mask of one pack."""
    length = len(ids)
    if length > seq_length:
        raise ValueError(f"a pack of {length} tokens does not fit seq_length={seq_length}")
    tokens = np.full(seq_length, pad_id, dtype=np.int64)
    labels = np.full(seq_length, pad_id, dtype=np.int64)
    label_mask = np.zeros(seq_length, dtype=np.float32)
    positions = np.zeros(seq_length, dtype=np.int64)
    segment = np.full(seq_length, -1, dtype=np.int64)  # padding belongs to no sub-sequence
    tokens[:length] = ids
    bounds = list(starts) + [length]
    for number, (start, end) in enumerate(zip(bounds, bounds[1:])):
        labels[start:end - 1] = ids[start + 1:end]
        label_mask[start:end - 1] = mask[start + 1:end]
        positions[start:end] = np.arange(end - start)
        segment[start:end] = number
    same = segment[:, None] == segment[None, :]
    causal = np.tril(np.ones((seq_length, seq_length), dtype=bool))
    blocked = ~(same & causal)  # Megatron masks where True
    np.fill_diagonal(blocked, False)  # padding rows attend to themselves (their loss is masked)
    return {
        "tokens": torch.from_numpy(tokens),
        "labels": torch.from_numpy(labels),
        "loss_mask": torch.from_numpy(label_mask),
        "position_ids": torch.from_numpy(positions),
        "attention_mask": torch.from_numpy(blocked)[None],
        "cu_seqlens": torch.tensor(bounds, dtype=torch.int32),
    }


def stack(samples: list[dict[str, torch.Tensor]], device: torch.device, boundaries: str | None) -> dict:
    """The batch of ``samples``; ``boundaries`` ("thd", "sbhd" or None): whether and how the
    sub-sequence boundaries go to the model as ``PackedSeqParams`` (one pack per micro-batch)."""
    batch = {key: torch.stack([s[key] for s in samples]).to(device)
             for key in ("tokens", "labels", "loss_mask", "position_ids", "attention_mask")}
    if boundaries and len(samples) == 1:
        from megatron.core.packed_seq_params import PackedSeqParams

        cu = samples[0]["cu_seqlens"].to(device)
        longest = int((cu[1:] - cu[:-1]).max())
        batch["packed_seq_params"] = PackedSeqParams(qkv_format=boundaries, cu_seqlens_q=cu, cu_seqlens_kv=cu,
                                                     max_seqlen_q=longest, max_seqlen_kv=longest)
    return batch


def pack_order(count: int, seed: int, index: int) -> int:
    """The pack read at position ``index``: a fresh seeded permutation every epoch."""
    epoch, offset = divmod(index, count)
    return int(_permutation(count, seed + epoch)[offset])


@functools.lru_cache(maxsize=4)
def _permutation(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(count)
