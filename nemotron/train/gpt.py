"""A Megatron-Core GPTModel from a ``model`` config (conf/model/*.yaml).

Dense Llama-style models only (RoPE, RMSNorm, SwiGLU, no biases, GQA); the hybrid
Mamba/MoE sizes (nano3, super3) are refused before anything is built, with the reason from
their config. The layer spec is TransformerEngine's when it is installed and a GPU is used,
Megatron-Core's local spec otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch


class UnsupportedModel(ValueError):
    pass


def check_supported(model: Mapping[str, Any], cuda: bool) -> None:
    """Refuse configs this trainer cannot build, naming the reason."""
    if model.get("requires_gpu") and not cuda:
        reason = model.get("gpu_only_reason") or "it needs CUDA kernels"
        raise UnsupportedModel(f"model {model.get('name')!r} runs on GPUs only: {reason}")
    if model.get("architecture", "gpt") != "gpt":
        raise UnsupportedModel(
            f"model {model.get('name')!r} is a {model.get('architecture')} architecture; "
            "this trainer builds dense GPT models (Megatron-Core GPTModel)"
        )


def padded_vocab_size(vocab_size: int, model: Mapping[str, Any], tp_size: int) -> int:
    multiple = int(model.get("make_vocab_size_divisible_by", 128)) * tp_size
    return math.ceil(vocab_size / multiple) * multiple


def transformer_config(model: Mapping[str, Any], tp_size: int, bf16: bool):
    import torch.nn.functional as F
    from megatron.core.transformer.transformer_config import TransformerConfig

    activation = model.get("activation", "swiglu")
    if activation not in ("swiglu", "gelu"):
        raise UnsupportedModel(f"model.activation={activation!r} (supported: swiglu, gelu)")
    return TransformerConfig(
        num_layers=int(model["num_layers"]),
        hidden_size=int(model["hidden_size"]),
        ffn_hidden_size=int(model["ffn_hidden_size"]),
        num_attention_heads=int(model["num_attention_heads"]),
        num_query_groups=int(model.get("num_query_groups") or model["num_attention_heads"]),
        normalization=model.get("normalization", "RMSNorm"),
        gated_linear_unit=activation == "swiglu",
        activation_func=F.silu if activation == "swiglu" else F.gelu,
        add_bias_linear=bool(model.get("add_bias_linear", False)),
        tensor_model_parallel_size=tp_size,
        use_cpu_initialization=True,
        params_dtype=torch.bfloat16 if bf16 else torch.float32,
        bf16=bf16,
        hidden_dropout=float(model.get("hidden_dropout", 0.0)),
        attention_dropout=float(model.get("attention_dropout", 0.0)),
        init_method_std=float(model.get("init_method_std", 0.02)),
        # The fused kernels below exist only on GPUs; the unfused paths give the same math.
        bias_activation_fusion=False,
        masked_softmax_fusion=False,
        persist_layer_norm=False,
        bias_dropout_fusion=False,
        apply_rope_fusion=False,
        gradient_accumulation_fusion=False,
    )


def layer_spec(model: Mapping[str, Any], cuda: bool):
    from megatron.core.models.gpt import gpt_layer_specs

    if cuda:
        try:
            import transformer_engine  # noqa: F401
        except ImportError:
            pass
        else:
            return gpt_layer_specs.get_gpt_layer_with_transformer_engine_spec()
    return gpt_layer_specs.get_gpt_layer_local_spec(normalization=model.get("normalization", "RMSNorm"))


def build_model(model: Mapping[str, Any], vocab_size: int, tp_size: int, cuda: bool, bf16: bool):
    """The GPTModel (wrapped for bf16) on this rank's device."""
    from megatron.core.models.gpt.gpt_model import GPTModel

    check_supported(model, cuda)
    config = transformer_config(model, tp_size, bf16)
    gpt = GPTModel(
        config=config,
        transformer_layer_spec=layer_spec(model, cuda),
        vocab_size=padded_vocab_size(vocab_size, model, tp_size),
        max_sequence_length=int(model["seq_length"]),
        position_embedding_type=model.get("position_embedding_type", "rope"),
        rotary_base=int(model.get("rotary_base", 10000)),
        share_embeddings_and_output_weights=not model.get("untie_embeddings_and_output_weights", True),
    )
    if cuda:
        gpt = gpt.cuda()
    if bf16:
        from megatron.core.transformer.module import Float16Module

        gpt = Float16Module(config, gpt)
    return gpt


def unwrap(model):
    """The GPTModel inside a Float16Module (or the model itself)."""
    return getattr(model, "module", model)


def architecture_of(model: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that must match between a checkpoint and the model that loads it."""
    keys = ("num_layers", "hidden_size", "ffn_hidden_size", "num_attention_heads", "num_query_groups",
            "normalization", "activation", "add_bias_linear", "position_embedding_type",
            "untie_embeddings_and_output_weights")
    return {key: model.get(key) for key in keys}
