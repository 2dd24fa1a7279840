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
from nemotron.schemas.train import TrainConfig
from nemotron.train.buildable import UnsupportedModel, check_supported  # noqa: F401  (the builder's rules)
from nemotron.train.param_count import padded_vocab_size


def transformer_config(model: ModelConfig, tp_size: int, bf16: bool, layout: TrainConfig | None = None):
    """Megatron-Core's config of ``model``; ``layout`` adds the parallel layout and recompute
    settings of a training run (without it: tensor parallel only, as export and tests build)."""
    import torch.nn.functional as F
    from megatron.core.transformer.transformer_config import TransformerConfig

    return TransformerConfig(**_layout_settings(layout), 
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


def build_chunks(model: ModelConfig, vocab_size: int, layout: TrainConfig, cuda: bool, bf16: bool) -> list:
    """This rank's model chunks of a training run: one per virtual pipeline stage (one without
    interleaving), each holding its stage's layers, the embedding on the first stage and the
    output layer on the last; wrapped for bf16 like :func:`build_model`.

    On CPU a pipeline-parallel rank starts from exactly the weights one process would: it
    builds the whole model once (Megatron-Core's initialization, same seed) and keeps its
    stages' layers, so layouts can be compared step by step. On GPUs each stage initializes
    its own layers, as Megatron-LM does (the whole model need not fit on one GPU)."""
    from megatron.core import parallel_state
    from megatron.core.models.gpt.gpt_model import GPTModel

    check_supported(model, cuda)
    tp = layout.tensor_parallel
    config = transformer_config(model, tp, bf16, layout)
    # gloo matches a batch of sends and receives between the same two ranks out of order (a
    # pipeline of two, interleaved, gets another micro-batch's activations: measured), so CPU
    # runs send and receive one tensor at a time.
    config.batch_p2p_comm = cuda
    whole = _whole_model_state(model, vocab_size, tp, cuda, bf16) if layout.pipeline_parallel > 1 and not cuda else None
    chunks = []
    for stage in range(layout.virtual_pipeline_parallel or 1):
        vp_stage = stage if layout.virtual_pipeline_parallel else None
        gpt = GPTModel(
            config=config,
            transformer_layer_spec=layer_spec(model, cuda),
            vocab_size=padded_vocab_size(vocab_size, model.make_vocab_size_divisible_by, tp),
            max_sequence_length=model.seq_length,
            pre_process=parallel_state.is_pipeline_first_stage(ignore_virtual=False, vp_stage=vp_stage),
            post_process=parallel_state.is_pipeline_last_stage(ignore_virtual=False, vp_stage=vp_stage),
            position_embedding_type=model.position_embedding_type,
            rotary_base=model.rotary_base,
            share_embeddings_and_output_weights=not model.untie_embeddings_and_output_weights,
            vp_stage=vp_stage,
        )
        if whole is not None:
            gpt.load_state_dict(_stage_state(gpt, whole))
        if cuda:
            gpt = gpt.cuda()
        if bf16:
            from megatron.core.transformer.module import Float16Module

            gpt = Float16Module(config, gpt)
        chunks.append(gpt)
    return chunks


def _whole_model_state(model: ModelConfig, vocab_size: int, tp: int, cuda: bool, bf16: bool) -> dict[str, torch.Tensor]:
    """The state of the whole model (every layer, one stage) as one process would build it."""
    import dataclasses

    from megatron.core.models.gpt.gpt_model import GPTModel

    config = dataclasses.replace(transformer_config(model, tp, bf16), pipeline_model_parallel_size=1)
    whole = GPTModel(config=config, transformer_layer_spec=layer_spec(model, cuda),
                     vocab_size=padded_vocab_size(vocab_size, model.make_vocab_size_divisible_by, tp),
                     max_sequence_length=model.seq_length, pre_process=True, post_process=True,
                     position_embedding_type=model.position_embedding_type, rotary_base=model.rotary_base,
                     share_embeddings_and_output_weights=not model.untie_embeddings_and_output_weights)
    return whole.state_dict()


def _stage_state(gpt, whole: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The entries of ``whole`` for the layers ``gpt`` (one pipeline stage) holds: its local
    layer i is the whole model's layer ``layer_number - 1``."""
    global_index = {str(i): str(layer.layer_number - 1) for i, layer in enumerate(gpt.decoder.layers)}
    state = {}
    for key in gpt.state_dict():
        parts = key.split(".")
        if parts[:2] == ["decoder", "layers"]:
            parts[2] = global_index[parts[2]]
        state[key] = whole[".".join(parts)]
    return state


def unwrap(model):
    """The GPTModel inside Megatron-Core's DDP and Float16Module wrappers (or the model itself)."""
    while hasattr(model, "module"):
        model = model.module
    return model

