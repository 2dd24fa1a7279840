"""The ``rl`` group: GRPO settings, the reward functions and the backend that runs them."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from nemo_runspec.schema import GroupSchema

BACKENDS = ("trl", "nemo_rl")
# Keys that change how a run is executed, never what it computes (not in the fingerprint).
EXECUTION_KEYS = ("output_root", "device", "nproc_per_node")


class RewardSpec(GroupSchema):
    """A reward callable by ``_target_`` (``(prompts, completions, **columns) -> list[float]``);
    any other key is passed to its constructor."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    target: str = Field(alias="_target_", pattern=r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")
    weight: float = 1.0


class RLConfig(GroupSchema):
    backend: Literal[BACKENDS] = "trl"  # type: ignore[valid-type]
    steps: int = Field(ge=1)
    prompts_per_step: int = Field(ge=1)
    num_generations: int = Field(ge=2)  # GRPO's advantage is relative to the group: two at least
    max_prompt_length: int = Field(ge=1)
    max_completion_length: int = Field(ge=1)
    temperature: float = Field(1.0, gt=0)
    lr: float = Field(gt=0)
    kl_coef: float = Field(0.0, ge=0)
    clip_epsilon: float = Field(0.2, ge=0)
    clip_grad: float = Field(1.0, ge=0)
    micro_batch_size: int = Field(1, ge=1)
    seed: int = Field(ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    nproc_per_node: int = Field(1, ge=1)
    gpus_per_node: int = Field(1, ge=1)
    num_nodes: int = Field(1, ge=1)
    eval_interval: int | None = Field(None, ge=0)
    checkpoint_interval: int | None = Field(None, ge=1)
    max_val_samples: int = Field(256, ge=1)
    verifier_workers: int = Field(8, ge=1)
    output_root: str
    rewards: list[RewardSpec] = Field(min_length=1)
