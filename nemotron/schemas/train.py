"""The ``train`` group: schedule, batch sizes, parallel layout and where a Megatron run goes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from nemo_runspec.schema import GroupSchema

# Keys that change how a run is executed or shown, never what it computes (not in the fingerprint).
EXECUTION_KEYS = ("output_root", "nproc_per_node", "device")


class TrainConfig(GroupSchema):
    steps: int = Field(ge=1)
    micro_batch_size: int = Field(ge=1)
    global_batch_size: int = Field(ge=1)
    seq_length: int | None = Field(None, ge=1)  # SFT: the packs' length; pretraining: the model's
    seed: int = Field(ge=0)
    checkpoint_interval: int | None = Field(None, ge=0)  # 0 or null: only at the last step
    eval_interval: int | None = Field(None, ge=0)  # 0 or null: only at the last step
    eval_steps: int = Field(1, ge=1)
    tensor_parallel: int = Field(1, ge=1)
    nproc_per_node: int = Field(1, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    output_root: str

    @model_validator(mode="after")
    def _batches(self) -> TrainConfig:
        if self.global_batch_size % self.micro_batch_size:
            raise ValueError(f"global_batch_size={self.global_batch_size} is not a multiple of "
                             f"micro_batch_size={self.micro_batch_size}")
        return self
