"""Megatron-Core's ``GPTModel`` from a ``model`` config (conf/model/*.yaml): dense Llama-style
models, and MoE ones (``num_moe_experts``: every layer's MLP is a mixture of experts).

The layer spec is TransformerEngine's when it is installed and a GPU is used, Megatron-Core's
local spec otherwise (MoE experts one after another there: grouped GEMM is TE's).
"""

from __future__ import annotations

from nemotron.schemas.model import ModelConfig


def layer_spec(model: ModelConfig, use_te: bool):
    from megatron.core.models.gpt import gpt_layer_specs

    experts = model.num_moe_experts
    if use_te:
        return gpt_layer_specs.get_gpt_layer_with_transformer_engine_spec(
            num_experts=experts, moe_grouped_gemm=model.moe_grouped_gemm, qk_layernorm=model.qk_layernorm)
    return gpt_layer_specs.get_gpt_layer_local_spec(num_experts=experts, moe_grouped_gemm=False,
                                                   normalization=model.normalization, qk_layernorm=model.qk_layernorm)


def gpt_model(config, model: ModelConfig, spec, vocab_size: int, pre_process: bool = True, post_process: bool = True,
              vp_stage: int | None = None):
    from megatron.core.models.gpt.gpt_model import GPTModel

    return GPTModel(
        config=config,
        transformer_layer_spec=spec,
        vocab_size=vocab_size,
        max_sequence_length=model.seq_length,
        pre_process=pre_process,
        post_process=post_process,
        position_embedding_type=model.position_embedding_type,
        rotary_base=model.rotary_base,
        share_embeddings_and_output_weights=not model.untie_embeddings_and_output_weights,
        vp_stage=vp_stage,
    )
