"""What the trainer can build, checked without torch: the driver refuses a model before any
training process starts, and the builder (``nemotron.train.models``) checks the same rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nemo_runspec.errors import ConfigError
from nemotron.schemas.model import ModelConfig, model_config
from nemotron.schemas.train import TrainConfig

# What nemotron.train.transformer_config maps to Megatron-Core's activation functions.
ACTIVATIONS = ("swiglu", "silu", "gelu", "geglu", "relu", "reglu", "squared_relu")
GATED = ("swiglu", "geglu", "reglu")


class UnsupportedModel(ConfigError, ValueError):
    """A model config this trainer cannot build; the message names the reason."""


def check_supported(model: ModelConfig | Mapping[str, Any], cuda: bool) -> None:
    """Refuse configs this trainer cannot build, naming the reason."""
    model = model_config(model)
    if model.requires_gpu and not cuda:
        reason = model.gpu_only_reason or "it needs CUDA kernels"
        raise UnsupportedModel(f"model {model.name!r} runs on GPUs only: {reason}",
                               hint="train it with --run PROFILE on GPU nodes (or train.device=cuda); on a CPU a "
                                    "tiny size of the same family runs (e.g. model=nano3_tiny)")
    if model.architecture == "moe":
        raise UnsupportedModel(f"model {model.name!r} has architecture 'moe' (an imported record)",
                               hint="a dense model with experts is architecture: gpt with num_moe_experts; "
                                    "Nemotron-H is architecture: hybrid")
    if model.activation not in ACTIVATIONS:
        raise UnsupportedModel(f"model.activation={model.activation!r} (supported: {', '.join(ACTIVATIONS)})")
    gated = model.activation in GATED
    if model.gated_linear_unit is not None and model.gated_linear_unit != gated:
        raise UnsupportedModel(f"model.gated_linear_unit={model.gated_linear_unit} contradicts "
                               f"model.activation={model.activation!r} (gated: {', '.join(GATED)})")
    if model.moe_latent_size:
        raise UnsupportedModel(f"model {model.name!r} has LatentMoE experts (moe_latent_size), which "
                               "megatron-core 0.16 cannot build", hint="upgrade megatron-core on the GPU image")
    if model.mtp_num_layers:
        raise UnsupportedModel(f"model {model.name!r} has multi-token prediction layers, which this trainer "
                               "does not build yet", hint="set model.mtp_num_layers=0")
    if model.architecture == "hybrid":
        needed = {"mamba_state_dim": model.mamba_state_dim, "mamba_head_dim": model.mamba_head_dim,
                  "mamba_num_groups": model.mamba_num_groups}
        if missing := [key for key, value in needed.items() if value is None]:
            raise UnsupportedModel(f"hybrid model {model.name!r} needs model.{missing[0]}")
        if "E" in (model.hybrid_override_pattern or "") and not model.num_moe_experts:
            raise UnsupportedModel(f"hybrid model {model.name!r} has MoE layers (E) but no num_moe_experts")
        heads = model.mamba_num_heads or model.hidden_size * (model.mamba_expand or 2) // model.mamba_head_dim
        if heads % model.mamba_num_groups:
            raise UnsupportedModel(f"model.mamba_num_heads={heads} is not a multiple of "
                                   f"model.mamba_num_groups={model.mamba_num_groups}")


def needs_gpu_features(train: TrainConfig) -> bool:
    """Whether ``train`` asks for something only a GPU run has (so the caller finds out
    whether it has one; that costs importing torch)."""
    return (train.context_parallel > 1 or train.precision != "fp32"
            or train.device == "cuda")


def check_layout(train: TrainConfig, world: int, cuda: bool, has_transformer_engine: bool) -> None:
    """Refuse a parallel layout ``world`` processes cannot form, or a feature this machine
    cannot run, naming the reason (the rules across the train group alone are its schema's)."""
    if world % train.model_parallel:
        raise UnsupportedModel(f"{world} processes are not a multiple of tensor x pipeline x context parallel = "
                               f"{train.tensor_parallel} x {train.pipeline_parallel} x {train.context_parallel}",
                               hint="set train.nproc_per_node (or the SLURM job's tasks) to a multiple of it")
    data_parallel = world // train.model_parallel
    per_step = train.micro_batch_size * data_parallel
    if train.global_batch_size % per_step:
        raise UnsupportedModel(f"train.global_batch_size={train.global_batch_size} is not a multiple of "
                               f"micro_batch_size x data-parallel size = {train.micro_batch_size} x {data_parallel}",
                               hint="change train.micro_batch_size, train.global_batch_size or the number of processes")
    micro_batches = train.global_batch_size // per_step
    if train.virtual_pipeline_parallel and micro_batches < train.pipeline_parallel:
        raise UnsupportedModel(f"an interleaved pipeline needs at least pipeline_parallel={train.pipeline_parallel} "
                               f"micro-batches per step, this layout has {micro_batches}",
                               hint="raise train.global_batch_size or lower train.micro_batch_size")
    if train.expert_parallel > 1 and (data_parallel * train.context_parallel) % train.expert_parallel:
        raise UnsupportedModel(f"train.expert_parallel={train.expert_parallel} does not divide data x context "
                               f"parallel = {data_parallel} x {train.context_parallel}",
                               hint="choose train.expert_parallel among the divisors of data x context parallel")
    gpu_only = {
        "train.precision=bf16": (train.precision == "bf16", "bf16 with fp32 main parameters runs on GPUs; CPU runs are fp32"),
        "train.precision=fp8": (train.precision == "fp8", "fp8 needs TransformerEngine on a GPU"),
        "train.context_parallel": (train.context_parallel > 1, "ring attention is TransformerEngine's"),
    }
    for key, (asked, reason) in gpu_only.items():
        needs_te = key != "train.precision=bf16"
        if asked and (not cuda or (needs_te and not has_transformer_engine)):
            where = "on this machine" if not cuda else "without TransformerEngine"
            raise UnsupportedModel(f"{key} cannot run {where}: {reason}",
                                   hint="run it on GPU nodes (--run PROFILE); the tests cover it on CPU where it can run")
