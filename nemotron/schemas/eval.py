"""The ``eval`` group: which evaluation runs, on which split, how much of it.

One schema for both kinds; the keys of the other kind keep their defaults. ``loss`` reads a
PretrainBlendsArtifact (splits ``valid``/``test``), ``accuracy`` a SplitJsonlDataArtifact
(splits ``val``/``test``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from nemo_runspec.schema import GroupSchema
from nemotron.schemas.rl import RewardSpec

SPLITS = {"loss": ("valid", "test"), "accuracy": ("val", "test")}


class EvalConfig(GroupSchema):
    kind: Literal["loss", "accuracy"]
    split: str = "valid"
    seed: int = Field(1234, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    output_root: str
    # loss
    max_samples: int = Field(64, ge=1)
    micro_batch_size: int = Field(4, ge=1)
    weights: Literal["trained", "initial"] = "trained"
    # accuracy
    max_prompts: int = Field(256, ge=1)
    max_new_tokens: int = Field(32, ge=1)
    batch_size: int = Field(32, ge=1)
    samples: int = Field(0, ge=0)  # k sampled completions per prompt besides the greedy one (pass@k); 0: none
    temperature: float = Field(1.0, gt=0)
    rewards: list[RewardSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _fits_its_kind(self) -> EvalConfig:
        if self.split not in SPLITS[self.kind]:
            raise ValueError(f"eval.split must be one of {', '.join(SPLITS[self.kind])} for eval={self.kind}, "
                             f"got {self.split!r}")
        if self.kind == "accuracy" and not self.rewards:
            raise ValueError("eval.rewards must name at least one reward function for eval=accuracy")
        if self.kind == "accuracy" and self.weights != "trained":
            raise ValueError("eval.weights=initial is for eval=loss (the untrained baseline)")
        return self
