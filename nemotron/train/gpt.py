"""A Megatron-Core GPTModel from a ``model`` config (conf/model/*.yaml).

Dense Llama-style models only (RoPE, RMSNorm, SwiGLU, no biases, GQA); the hybrid
Mamba/MoE sizes (nano3, super3) are refused before anything is built, with the reason from
their config. The layer spec is TransformerEngine's when it is installed and a GPU is used,
Megatron-Core's local spec otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from nemotron.schemas.model import ModelConfig, model_config
from nemotron.train.buildable import UnsupportedModel, check_supported  # noqa: F401  (the builder's rules)
from nemotron.train.param_count import padded_vocab_size


def transformer_config(model: ModelConfig, tp_size: int, bf16: bool):
    import torch.nn.functional as F
    from megatron.core.transformer.transformer_config import TransformerConfig

    return TransformerConfig(
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
        gated_linear_unit=model.activation == "swiglu",
        activation_func=F.silu if model.activation == "swiglu" else F.gelu,
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


def layer_spec(model: ModelConfig, cuda: bool):
    from megatron.core.models.gpt import gpt_layer_specs

    if cuda:
        try:
            import transformer_engine  # noqa: F401
        except ImportError:
            pass
        else:
            return gpt_layer_specs.get_gpt_layer_with_transformer_engine_spec(qk_layernorm=model.qk_layernorm)
    return gpt_layer_specs.get_gpt_layer_local_spec(normalization=model.normalization, qk_layernorm=model.qk_layernorm)


def build_model(model: ModelConfig | Mapping[str, Any], vocab_size: int, tp_size: int, cuda: bool, bf16: bool):
    """The GPTModel (wrapped for bf16) on this rank's device."""
    from megatron.core.models.gpt.gpt_model import GPTModel

    model = model_config(model)
    check_supported(model, cuda)
    config = transformer_config(model, tp_size, bf16)
    gpt = GPTModel(
        config=config,
        transformer_layer_spec=layer_spec(model, cuda),
        vocab_size=padded_vocab_size(vocab_size, model.make_vocab_size_divisible_by, tp_size),
        max_sequence_length=model.seq_length,
        position_embedding_type=model.position_embedding_type,
        rotary_base=model.rotary_base,
        share_embeddings_and_output_weights=not model.untie_embeddings_and_output_weights,
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

