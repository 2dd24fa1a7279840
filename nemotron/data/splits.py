"""The data splits: their names, the ratios that size them, and the hash that assigns a record.

The canonical names are ``train``, ``valid`` and ``test``: a dataset's ``split`` in a blend,
``data_prep.splits`` of pretraining and SFT, the keys of blend.json and SFT's split folders.
RL data names its validation split ``val`` (``val.jsonl``, ``data_prep.splits.val``, the
artifact's ``val_path``), the name its consumers (NeMo-RL, NeMo-Gym) use; :data:`RL_NAMES`
is that relation, the one place it is written down.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from nemo_runspec.errors import ConfigError, DataError

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


def refuse_empty_splits(counts: Mapping[str, int], asked: Mapping[str, Any], of: str) -> None:
    """Refuse an output whose train split, or a split ``asked`` names, came out empty: a trainer
    would find out only when it reads the split, or never (no validation loss at all).

    ``counts``: what each split holds; ``asked``: split -> its value in ``data_prep.splits``
    (train is always asked for); ``of``: what was split, for the message."""
    if not counts.get("train"):
        raise DataError(f"nothing to train on: the train split of {of} is empty",
                        hint="add data, or leave train a share of data_prep.splits")
    for split, value in asked.items():
        if not counts.get(split):
            raise DataError(f"the {split} split of {of} is empty, though data_prep.splits.{split}={value} asks for it",
                            hint=f"add data, or set data_prep.splits.{split}=0")


def split_by_hash(key: bytes, ratios: tuple[float, float, float]) -> int:
    """The index in :data:`SPLITS` of the record whose identity is ``key``.

    A hash of the key drawn uniformly from [0, 1) and cut at the ratios: the same key always
    lands in the same split (so duplicates never straddle two), whatever the run, worker or
    input order.
    """
    u = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") / 2.0**64
    return 0 if u < ratios[0] else (1 if u < ratios[0] + ratios[1] else 2)


@dataclass(frozen=True)
class SplitSpec:
    """How many of the drawn prompts val and test take: each a ``("count", n)`` or a
    ``("fraction", f)``; train takes the rest."""

    val: tuple[str, float | int]
    test: tuple[str, float | int]
    requested: dict[str, Any]

    def sizes(self, prompts: int) -> dict[str, int]:
        """How many of ``prompts`` distinct prompts each split draws."""
        val, test = self._size(self.val, prompts), self._size(self.test, prompts)
        if val + test > prompts:
            if "count" not in (self.val[0], self.test[0]):
                test = prompts - val  # two fractions rounded up past the total (a handful of prompts)
            else:
                raise ConfigError(
                    f"data_prep.splits {self.requested} asks for {val} val + {test} test prompts, but the data "
                    f"holds only {prompts} distinct prompts to draw from", hint="lower the counts, or give fractions (0.05)")
        return {"train": prompts - val - test, "val": val, "test": test}

    @staticmethod
    def _size(part: tuple[str, float | int], prompts: int) -> int:
        kind, value = part
        return int(value) if kind == "count" else min(prompts, math.floor(prompts * value + 0.5))

    def describe(self) -> dict[str, Any]:
        return {"requested": self.requested, "train": "rest",
                "val": {self.val[0]: self.val[1]}, "test": {self.test[0]: self.test[1]}}


def split_spec(splits: Any) -> SplitSpec:
    """Parse ``data_prep.splits``; errors are ConfigErrors.

    ``val`` / ``test``: an integer is a count of distinct prompts, a float a fraction of them;
    a missing one is 0. ``train`` (missing or null) takes the rest; when given (a float), the
    three floats are weights normalised by their sum, so ``{train: 0.9, val: 0.05, test: 0.05}``
    works too.
    """
    if not isinstance(splits, dict) or not splits:
        raise ConfigError(f"data_prep.splits must be a mapping such as {{val: 0.05, test: 0.05}}, got {splits!r}")
    unknown = sorted(set(splits) - set(RL_SPLITS))
    if unknown:
        raise ConfigError(f"data_prep.splits: unknown split(s) {unknown} (use train, val, test)")
    for name, value in splits.items():
        if name == "train" and value is None:
            continue  # the rest
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or math.isinf(value):
            raise ConfigError(f"data_prep.splits.{name} must be a non-negative number, got {value!r}")
    requested = {name: splits[name] for name in RL_SPLITS if name in splits}
    splits = {name: value for name, value in splits.items() if not (name == "train" and value is None)}
    if "train" in splits:
        if any(isinstance(v, int) for v in splits.values()):
            raise ConfigError(f"data_prep.splits {requested}: with train given, every split must be a ratio "
                              f"(a float such as 0.9)", hint="train takes the rest: give counts for val and test "
                                                             "only ({val: 20, test: 20})")
        total = sum(float(v) for v in splits.values())
        if total <= 0:
            raise ConfigError(f"data_prep.splits must not be all zero, got {requested}")
        return SplitSpec(("fraction", splits.get("val", 0.0) / total), ("fraction", splits.get("test", 0.0) / total),
                         requested)
    parts = {}
    for name in ("val", "test"):
        value = splits.get(name, 0)
        if isinstance(value, int):
            parts[name] = ("count", value)
        elif value > 1:
            raise ConfigError(f"data_prep.splits.{name}={value} is a fraction above 1",
                              hint="give a count as an integer (20) or a fraction as a float (0.05)")
        else:
            parts[name] = ("fraction", float(value))
    fractions = sum(v for kind, v in parts.values() if kind == "fraction")
    if fractions > 1 + 1e-9:
        raise ConfigError(f"data_prep.splits {requested}: val + test fractions exceed 1")
    return SplitSpec(parts["val"], parts["test"], requested)
