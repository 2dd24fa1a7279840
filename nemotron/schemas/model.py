"""The ``model`` group: the architecture, as Megatron-Core's config fields name it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from nemo_runspec.schema import GroupSchema, validate

Activation = Literal["swiglu", "squared_relu", "gelu", "geglu", "relu", "reglu", "silu", "quick_gelu"]
PATTERN_SYMBOLS = "M*-E"  # Mamba-2, attention, dense MLP, MoE (Megatron-Core's hybrid layer symbols)


class ModelConfig(GroupSchema):
    name: str
    # moe: what an import of a Megatron-LM MoE checkpoint records (no trainer builds it yet).
    architecture: Literal["gpt", "hybrid", "moe"] = "gpt"
    num_layers: int = Field(ge=1)
    hidden_size: int = Field(ge=1)
    ffn_hidden_size: int = Field(ge=1)
    num_attention_heads: int = Field(ge=1)
    num_query_groups: int | None = Field(None, ge=1)
    kv_channels: int | None = Field(None, ge=1)
    seq_length: int = Field(ge=1)
    position_embedding_type: Literal["rope", "none", "learned_absolute", "yarn", "mrope"] = "rope"
    rotary_base: int = Field(10000, ge=1)
    normalization: Literal["RMSNorm", "LayerNorm"] = "RMSNorm"
    layernorm_epsilon: float = Field(1.0e-5, gt=0)
    activation: Activation = "swiglu"
    gated_linear_unit: bool | None = None  # None: implied by the activation (swiglu, geglu, reglu)
    add_bias_linear: bool = False
    add_qkv_bias: bool = False
    qk_layernorm: bool = False
    untie_embeddings_and_output_weights: bool = True
    make_vocab_size_divisible_by: int = Field(128, ge=1)
    tokenizer_vocab_size: int | None = Field(None, ge=1)  # `model params` only; training takes the data's
    hidden_dropout: float = Field(0.0, ge=0, le=1)
    attention_dropout: float = Field(0.0, ge=0, le=1)
    init_method_std: float = Field(0.02, gt=0)
    # Hybrid (Mamba-2) layers.
    hybrid_override_pattern: str | None = None
    mamba_state_dim: int | None = Field(None, ge=1)
    mamba_head_dim: int | None = Field(None, ge=1)
    mamba_num_heads: int | None = Field(None, ge=1)
    mamba_num_groups: int | None = Field(None, ge=1)
    mamba_conv_kernel: int | None = Field(None, ge=1)
    mamba_expand: int | None = Field(None, ge=1)
    # Mixture of experts.
    num_moe_experts: int | None = Field(None, ge=1)
    moe_router_topk: int | None = Field(None, ge=1)
    moe_ffn_hidden_size: int | None = Field(None, ge=1)
    moe_latent_size: int | None = Field(None, ge=1)
    moe_shared_expert_intermediate_size: int | None = Field(None, ge=1)
    moe_shared_expert_gate: bool = False
    moe_layer_freq: int | None = Field(None, ge=1)
    moe_router_score_function: Literal["softmax", "sigmoid"] | None = None
    moe_router_topk_scaling_factor: float | None = Field(None, gt=0)
    moe_router_enable_expert_bias: bool = False
    moe_router_load_balancing_type: Literal["aux_loss", "seq_aux_loss", "sinkhorn", "none"] | None = None
    moe_aux_loss_coeff: float = Field(0.0, ge=0)
    moe_router_dtype: Literal["fp32", "fp64"] | None = None
    moe_grouped_gemm: bool = False
    # Multi-token prediction.
    mtp_num_layers: int | None = Field(None, ge=0)
    mtp_hybrid_override_pattern: str | None = None
    # Where it can run.
    requires_gpu: bool = False
    gpu_only_reason: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        groups = self.num_query_groups or self.num_attention_heads
        if self.num_attention_heads % groups:
            raise ValueError(f"num_attention_heads={self.num_attention_heads} is not a multiple of "
                             f"num_query_groups={groups}")
        if self.architecture == "hybrid":
            pattern = self.hybrid_override_pattern
            if not pattern:
                raise ValueError("a hybrid model needs hybrid_override_pattern (M, *, -, E per layer)")
            if len(pattern) != self.num_layers:
                raise ValueError(f"hybrid_override_pattern has {len(pattern)} layers, num_layers={self.num_layers}")
            if bad := sorted(set(pattern) - set(PATTERN_SYMBOLS)):
                raise ValueError(f"hybrid_override_pattern has unknown layer symbol(s) {bad} (use M * - E)")
        if self.num_moe_experts and self.moe_router_topk and self.moe_router_topk > self.num_moe_experts:
            raise ValueError(f"moe_router_topk={self.moe_router_topk} exceeds num_moe_experts={self.num_moe_experts}")
        return self


# The fields that must match between a checkpoint and the model that loads it.
ARCHITECTURE_KEYS = ("architecture", "num_layers", "hidden_size", "ffn_hidden_size", "num_attention_heads",
                     "num_query_groups", "normalization", "activation", "add_bias_linear", "position_embedding_type",
                     "untie_embeddings_and_output_weights", "hybrid_override_pattern", "mamba_state_dim",
                     "mamba_head_dim", "mamba_num_heads", "mamba_num_groups", "num_moe_experts", "moe_ffn_hidden_size",
                     "moe_shared_expert_intermediate_size")
_RECORDED_BEFORE = {"architecture": "gpt"}  # what records written before a key existed meant


def architecture_of(model: Mapping[str, Any]) -> dict[str, Any]:
    """``ARCHITECTURE_KEYS`` of a model config as given (recorded in checkpoints and metadata)."""
    return {key: model.get(key, _RECORDED_BEFORE.get(key)) for key in ARCHITECTURE_KEYS}


def model_config(model: ModelConfig | Mapping[str, Any]) -> ModelConfig:
    """``model`` validated (a recorded architecture, a job's model section), or as it is."""
    return model if isinstance(model, ModelConfig) else validate(ModelConfig, model, "model")
