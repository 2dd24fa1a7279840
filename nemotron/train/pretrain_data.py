"""Pretraining batches from a blend.json through Megatron-Core's GPTDataset.

The per-split blend written by stage-0 data prep goes to ``BlendedMegatronDatasetBuilder``
unchanged. Batches are read by position (step, micro-batch, data-parallel rank), so a resumed
run reads exactly the samples an uninterrupted one would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from nemotron.data.splits import SPLITS


@dataclass(frozen=True)
class BlendTokenizer:
    """What GPTDataset asks of a tokenizer."""

    vocab_size: int
    eod: int
    pad: int
    name: str

    @property
    def eos(self) -> int:
        return self.eod

    @property
    def unique_identifiers(self) -> dict:
        return {"class": "nemotron-tokenizer", "name": self.name}


def build_datasets(blend_path: Path, tokenizer: BlendTokenizer, seq_length: int, seed: int,
                   sizes: tuple[int, int, int], cache_dir: Path | None):
    """Train/valid/test GPTDatasets of at least ``sizes`` samples (None where a split is empty)."""
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from megatron.core.datasets.utils import get_blend_from_list

    blend = json.loads(Path(blend_path).read_text())
    per_split = [get_blend_from_list(blend.get(split)) if blend.get(split) else None for split in SPLITS]
    sizes = tuple(size if per_split[i] else 0 for i, size in enumerate(sizes))
    config = GPTDatasetConfig(
        random_seed=seed,
        sequence_length=seq_length,
        blend_per_split=per_split,
        path_to_cache=str(cache_dir) if cache_dir else None,
        tokenizer=tokenizer,
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
        create_attention_mask=False,
    )
    return BlendedMegatronDatasetBuilder(GPTDataset, list(sizes), lambda: True, config).build()


def batch(dataset, first: int, size: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Samples ``first .. first+size-1`` stacked, with the causal mask the CPU path needs."""
    samples = [dataset[i] for i in range(first, first + size)]
    out = {key: torch.stack([s[key] for s in samples]).to(device) for key in ("tokens", "labels", "loss_mask", "position_ids")}
    seq = out["tokens"].shape[1]
    out["attention_mask"] = torch.triu(torch.ones(1, 1, seq, seq, dtype=torch.bool, device=device), diagonal=1)
    return out
