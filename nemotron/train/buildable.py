"""What the trainer can build, checked without torch: the driver refuses a model before any
training process starts, and the builder (``nemotron.train.gpt``) checks the same rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nemo_runspec.errors import ConfigError
from nemotron.schemas.model import ModelConfig, model_config

ACTIVATIONS = ("swiglu", "gelu")  # what the dense builder maps to Megatron-Core's activation functions


class UnsupportedModel(ConfigError, ValueError):
    """A model config this trainer cannot build; the message names the reason."""


def check_supported(model: ModelConfig | Mapping[str, Any], cuda: bool) -> None:
    """Refuse configs this trainer cannot build, naming the reason."""
    model = model_config(model)
    if model.requires_gpu and not cuda:
        reason = model.gpu_only_reason or "it needs CUDA kernels"
        raise UnsupportedModel(f"model {model.name!r} runs on GPUs only: {reason}")
    if model.architecture != "gpt":
        raise UnsupportedModel(f"model {model.name!r} is a {model.architecture} architecture; "
                               "this trainer builds dense GPT models (Megatron-Core GPTModel)")
    if model.num_moe_experts:
        raise UnsupportedModel(f"model {model.name!r} has num_moe_experts={model.num_moe_experts}; "
                               "this trainer builds dense GPT models (no MoE layers yet)")
    if model.activation not in ACTIVATIONS:
        raise UnsupportedModel(f"model.activation={model.activation!r} (supported: {', '.join(ACTIVATIONS)})")
    gated = model.activation == "swiglu"
    if model.gated_linear_unit is not None and model.gated_linear_unit != gated:
        raise UnsupportedModel(f"model.gated_linear_unit={model.gated_linear_unit} contradicts "
                               f"model.activation={model.activation!r} (gated: swiglu; not gated: gelu)")
