"""Megatron-Core's ``TransformerConfig`` of a ``model`` config (conf/model/*.yaml) and a
training run's parallel layout: one config for dense GPT, MoE and hybrid Mamba models."""

from __future__ import annotations

from typing import Any

import torch

from nemotron.schemas.model import ModelConfig
from nemotron.schemas.train import TrainConfig

GATED = ("swiglu", "geglu", "reglu")


def transformer_config(model: ModelConfig, tp_size: int, bf16: bool, layout: TrainConfig | None = None):
    """Megatron-Core's config of ``model``; ``layout`` adds the parallel layout and recompute
    settings of a training run (without it: tensor parallel only, as export and tests build)."""
    from megatron.core.transformer.transformer_config import TransformerConfig

    return TransformerConfig(
        **_layout_settings(layout),
        **_moe_settings(model),
        **_mamba_settings(model),
        num_layers=model.num_layers,
        hidden_size=model.hidden_size,
        ffn_hidden_size=model.ffn_hidden_size,
        num_attention_heads=model.num_attention_heads,
        num_query_groups=model.num_query_groups or model.num_attention_heads,
        kv_channels=model.kv_channels,  # None: hidden_size / num_attention_heads
        layernorm_epsilon=model.layernorm_epsilon,
        qk_layernorm=model.qk_layernorm,
        add_qkv_bias=model.add_qkv_bias,
        normalization=model.normalization,
        gated_linear_unit=model.activation in GATED,
        activation_func=activation_function(model.activation),
        add_bias_linear=model.add_bias_linear,
        tensor_model_parallel_size=tp_size,
        use_cpu_initialization=True,
        params_dtype=torch.bfloat16 if bf16 else torch.float32,
        bf16=bf16,
        hidden_dropout=model.hidden_dropout,
        attention_dropout=model.attention_dropout,
        init_method_std=model.init_method_std,
        # The fused kernels below exist only on GPUs; the unfused paths give the same math.
        bias_activation_fusion=False,
        masked_softmax_fusion=False,
        persist_layer_norm=False,
        bias_dropout_fusion=False,
        apply_rope_fusion=False,
        gradient_accumulation_fusion=False,
    )


def activation_function(name: str):
    """The elementwise function of ``model.activation`` (a gated one is applied to half the
    fc1 output, Megatron's ``gated_linear_unit``)."""
    import torch.nn.functional as F
    from megatron.core.activations import squared_relu

    functions = {"swiglu": F.silu, "silu": F.silu, "gelu": F.gelu, "geglu": F.gelu, "relu": F.relu,
                 "reglu": F.relu, "squared_relu": squared_relu}
    return functions[name]


def _moe_settings(model: ModelConfig) -> dict[str, Any]:
    if not model.num_moe_experts:
        return {}
    dtype = {"fp32": "fp32", "fp64": "fp64", None: None}[model.moe_router_dtype]
    return {
        "num_moe_experts": model.num_moe_experts,
        "moe_router_topk": model.moe_router_topk or 2,
        "moe_ffn_hidden_size": model.moe_ffn_hidden_size or model.ffn_hidden_size,
        "moe_shared_expert_intermediate_size": model.moe_shared_expert_intermediate_size,
        "moe_shared_expert_gate": model.moe_shared_expert_gate,
        "moe_router_score_function": model.moe_router_score_function or "softmax",
        "moe_router_topk_scaling_factor": model.moe_router_topk_scaling_factor,
        "moe_router_enable_expert_bias": model.moe_router_enable_expert_bias,
        "moe_router_load_balancing_type": model.moe_router_load_balancing_type or "aux_loss",
        "moe_aux_loss_coeff": model.moe_aux_loss_coeff,
        "moe_router_dtype": dtype,
        "moe_grouped_gemm": model.moe_grouped_gemm,
        # Every expert sees every token's routing decision through all-gathers: the one
        # dispatcher that needs neither CUDA streams nor all-to-all (gloo has none).
        "moe_token_dispatcher_type": "allgather",
        "moe_permute_fusion": False,
        "moe_router_fusion": False,
    }


def _mamba_settings(model: ModelConfig) -> dict[str, Any]:
    if model.architecture != "hybrid":
        return {}
    settings = {"mamba_state_dim": model.mamba_state_dim, "mamba_head_dim": model.mamba_head_dim,
                "mamba_num_heads": model.mamba_num_heads, "mamba_num_groups": model.mamba_num_groups}
    return {key: value for key, value in settings.items() if value is not None}


def _layout_settings(layout: TrainConfig | None) -> dict[str, Any]:
    if layout is None:
        return {}
    recompute = {"none": {}, "selective": {"recompute_granularity": "selective"},
                 "full": {"recompute_granularity": "full", "recompute_method": "uniform", "recompute_num_layers": 1}}
    dtype = torch.bfloat16 if layout.precision == "bf16" else torch.float32
    return {
        "pipeline_model_parallel_size": layout.pipeline_parallel,
        "virtual_pipeline_model_parallel_size": layout.virtual_pipeline_parallel,
        "context_parallel_size": layout.context_parallel,
        "expert_model_parallel_size": layout.expert_parallel,
        "sequence_parallel": layout.sequence_parallel,
        # What the pipeline sends between stages: the activations' dtype.
        "pipeline_dtype": dtype if layout.pipeline_parallel > 1 else None,
        **recompute[layout.recompute],
    }
