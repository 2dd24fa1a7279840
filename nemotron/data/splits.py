"""The data splits: their names, the ratios that size them, and the hash that assigns a record.

The canonical names are ``train``, ``valid`` and ``test``: a dataset's ``split`` in a blend,
``data_prep.splits`` of pretraining and SFT, the keys of blend.json and SFT's split folders.
RL data names its validation split ``val`` (``val.jsonl``, ``data_prep.splits.val``, the
artifact's ``val_path``), the name its consumers (NeMo-RL, NeMo-Gym) use; :data:`RL_NAMES`
is that relation, the one place it is written down.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Literal

from nemo_runspec.errors import ConfigError

Split = Literal["train", "valid", "test"]
SPLITS: tuple[Split, ...] = ("train", "valid", "test")
RL_NAMES: dict[Split, str] = {"train": "train", "valid": "val", "test": "test"}
RL_SPLITS: tuple[str, ...] = tuple(RL_NAMES[split] for split in SPLITS)


def split_ratios(splits: Mapping[str, float]) -> tuple[float, float, float]:
    """``data_prep.splits`` (weights by split name) as train, valid, test fractions summing to 1."""
    unknown = set(splits) - set(SPLITS)
    if unknown:
        raise ConfigError(f"data_prep.splits: unknown split(s) {sorted(unknown)} (use {', '.join(SPLITS)})")
    values = [float(splits.get(name, 0.0)) for name in SPLITS]
    if any(v < 0 for v in values) or sum(values) <= 0:
        raise ConfigError(f"data_prep.splits must be non-negative and not all zero, got {dict(splits)}")
    total = sum(values)
    return values[0] / total, values[1] / total, values[2] / total


def split_by_hash(key: bytes, ratios: tuple[float, float, float]) -> int:
    """The index in :data:`SPLITS` of the record whose identity is ``key``.

    A hash of the key drawn uniformly from [0, 1) and cut at the ratios: the same key always
    lands in the same split (so duplicates never straddle two), whatever the run, worker or
    input order.
    """
    u = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") / 2.0**64
    return 0 if u < ratios[0] else (1 if u < ratios[0] + ratios[1] else 2)
