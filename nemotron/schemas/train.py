"""The ``train`` group: schedule, batch sizes, the parallel layout and where a Megatron run goes.

The layout follows Megatron-Core's: the world is tensor x pipeline x context x data parallel
ranks (``nproc_per_node``, or a SLURM job's tasks); expert parallelism splits the MoE layers'
experts across data x context parallel ranks.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from nemo_runspec.schema import GroupSchema

# Keys that change how a run is executed or shown, not what it computes (not in the fingerprint):
# the same command in another parallel layout finds the same run directory and continues its
# checkpoints there, resharded (the layouts agree to float rounding, tests/nemotron/train/
# test_engine_layouts.py). The optimizer's kind is the exception a resume refuses to switch.
EXECUTION_KEYS = ("output_root", "nproc_per_node", "device", "tensor_parallel", "pipeline_parallel",
                  "virtual_pipeline_parallel", "context_parallel", "expert_parallel", "sequence_parallel",
                  "use_distributed_optimizer", "overlap_grad_reduce", "bucket_size", "recompute")


class TrainConfig(GroupSchema):
    steps: int = Field(ge=1)
    micro_batch_size: int = Field(ge=1)
    global_batch_size: int = Field(ge=1)
    seq_length: int | None = Field(None, ge=1)  # SFT: the packs' length; pretraining: the model's
    seed: int = Field(ge=0)
    checkpoint_interval: int | None = Field(None, ge=0)  # 0 or null: only at the last step
    eval_interval: int | None = Field(None, ge=0)  # 0 or null: only at the last step
    eval_steps: int = Field(1, ge=1)
    # The parallel layout (Megatron-Core's parallel_state).
    tensor_parallel: int = Field(1, ge=1)
    pipeline_parallel: int = Field(1, ge=1)
    virtual_pipeline_parallel: int | None = Field(None, ge=2)  # model chunks per pipeline rank (interleaved 1F1B)
    context_parallel: int = Field(1, ge=1)
    expert_parallel: int = Field(1, ge=1)
    sequence_parallel: bool = False
    # Megatron-Core's DDP and optimizer.
    use_distributed_optimizer: bool = False  # ZeRO-1: optimizer state sharded over data-parallel ranks
    overlap_grad_reduce: bool = False
    bucket_size: int | None = Field(None, ge=1)  # elements per gradient bucket; null: Megatron's default
    recompute: Literal["none", "selective", "full"] = "none"
    nproc_per_node: int = Field(1, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16", "fp8"] = "fp32"
    output_root: str

    @property
    def model_parallel(self) -> int:
        """Ranks that hold one copy of the model: tensor x pipeline x context parallel."""
        return self.tensor_parallel * self.pipeline_parallel * self.context_parallel

    @model_validator(mode="after")
    def _batches_and_layout(self) -> TrainConfig:
        if self.global_batch_size % self.micro_batch_size:
            raise ValueError(f"global_batch_size={self.global_batch_size} is not a multiple of "
                             f"micro_batch_size={self.micro_batch_size}")
        if self.virtual_pipeline_parallel and self.pipeline_parallel == 1:
            raise ValueError("virtual_pipeline_parallel needs pipeline_parallel > 1")
        if self.sequence_parallel and self.tensor_parallel == 1:
            raise ValueError("sequence_parallel needs tensor_parallel > 1")
        return self
