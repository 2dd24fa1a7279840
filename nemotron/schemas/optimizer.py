"""The ``optimizer`` group: which optimizer, and its warmup + cosine learning-rate schedule."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from nemo_runspec.schema import GroupSchema

# name -> torch.optim class; adam's weight decay is L2 in the gradient, adamw's is decoupled.
OPTIMIZERS = {"adamw": "AdamW", "adam": "Adam"}


class OptimizerConfig(GroupSchema):
    name: Literal["adamw", "adam"] = "adamw"
    lr: float = Field(gt=0)
    min_lr: float = Field(0.0, ge=0)
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    eps: float = Field(1.0e-8, gt=0)
    clip_grad: float = Field(0.0, ge=0)  # 0: no clipping

    @model_validator(mode="after")
    def _schedule(self) -> OptimizerConfig:
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr={self.min_lr} is above lr={self.lr}")
        return self
