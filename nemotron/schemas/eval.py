"""The ``eval`` group: which evaluation runs, on which split, how much of it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from nemo_runspec.schema import GroupSchema


class EvalConfig(GroupSchema):
    kind: Literal["loss"]
    split: Literal["valid", "test"] = "valid"
    max_samples: int = Field(64, ge=1)
    micro_batch_size: int = Field(4, ge=1)
    weights: Literal["trained", "initial"] = "trained"
    seed: int = Field(1234, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    output_root: str
