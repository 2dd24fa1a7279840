"""The trainer's models: a ``model`` config (conf/model/*.yaml) built as Megatron-Core's
``GPTModel`` (``architecture: gpt``, dense or MoE, :mod:`nemotron.train.gpt`) or its hybrid
Mamba model (``architecture: hybrid``, :mod:`nemotron.train.hybrid`), on this rank's device.

Configs the trainer cannot build are refused first, naming the reason
(:mod:`nemotron.train.buildable`). TransformerEngine's layer specs are used when it is installed
and a GPU is used, Megatron-Core's local modules otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from nemotron.schemas.model import ModelConfig, model_config
from nemotron.schemas.train import TrainConfig
from nemotron.train import gpt, hybrid
from nemotron.train.buildable import UnsupportedModel, check_supported  # noqa: F401  (the builder's rules)
from nemotron.train.param_count import padded_vocab_size
from nemotron.train.transformer_config import transformer_config


def has_transformer_engine() -> bool:
    try:
        import transformer_engine  # noqa: F401
    except ImportError:
        return False
    return True


def layer_spec(model: ModelConfig, cuda: bool):
    """The layer (GPT) or stack (hybrid) spec of ``model`` on this machine."""
    use_te = cuda and has_transformer_engine()
    return hybrid.stack_spec(model, use_te) if model.architecture == "hybrid" else gpt.layer_spec(model, use_te)


def megatron_config(model: ModelConfig, tp_size: int, cuda: bool, bf16: bool, layout: TrainConfig | None = None):
    config = transformer_config(model, tp_size, bf16, layout)
    # Grouped-GEMM experts are TransformerEngine's; the local spec runs them one after another.
    config.moe_grouped_gemm = bool(config.moe_grouped_gemm and cuda and has_transformer_engine())
    return config


def _construct(config, model: ModelConfig, spec, vocab_size: int, tp: int, pre_process: bool = True,
               post_process: bool = True, vp_stage: int | None = None):
    vocab = padded_vocab_size(vocab_size, model.make_vocab_size_divisible_by, tp)
    if model.architecture == "hybrid":
        return hybrid.hybrid_model(config, model, spec, vocab, pre_process, post_process)
    return gpt.gpt_model(config, model, spec, vocab, pre_process, post_process, vp_stage)


def build_model(model: ModelConfig | Mapping[str, Any], vocab_size: int, tp_size: int, cuda: bool, bf16: bool):
    """The whole model (wrapped for bf16) on this rank's device."""
    model = model_config(model)
    check_supported(model, cuda)
    config = megatron_config(model, tp_size, cuda, bf16)
    built = _construct(config, model, layer_spec(model, cuda), vocab_size, tp_size)
    return _placed(built, config, cuda, bf16)


def build_chunks(model: ModelConfig, vocab_size: int, layout: TrainConfig, cuda: bool, bf16: bool) -> list:
    """This rank's model chunks of a training run: one per virtual pipeline stage (one without
    interleaving), each holding its stage's layers, the embedding on the first stage and the
    output layer on the last; wrapped for bf16 like :func:`build_model`.

    On CPU a pipeline-parallel rank starts from exactly the weights one process would: it
    builds the whole model once (Megatron-Core's initialization, same seed) and keeps its
    stages' layers, so layouts can be compared step by step. On GPUs each stage initializes
    its own layers, as Megatron-LM does (the whole model need not fit on one GPU)."""
    from megatron.core import parallel_state

    check_supported(model, cuda)
    tp = layout.tensor_parallel
    config = megatron_config(model, tp, cuda, bf16, layout)
    # gloo matches a batch of sends and receives between the same two ranks out of order (a
    # pipeline of two, interleaved, gets another micro-batch's activations: measured), so CPU
    # runs send and receive one tensor at a time.
    config.batch_p2p_comm = cuda
    spec = layer_spec(model, cuda)
    whole = None
    if layout.pipeline_parallel > 1 and not cuda:
        one_stage = dataclasses.replace(megatron_config(model, tp, cuda, bf16), pipeline_model_parallel_size=1)
        whole = _construct(one_stage, model, spec, vocab_size, tp).state_dict()
    chunks = []
    for stage in range(layout.virtual_pipeline_parallel or 1):
        vp_stage = stage if layout.virtual_pipeline_parallel else None
        built = _construct(config, model, spec, vocab_size, tp,
                           pre_process=parallel_state.is_pipeline_first_stage(ignore_virtual=False, vp_stage=vp_stage),
                           post_process=parallel_state.is_pipeline_last_stage(ignore_virtual=False, vp_stage=vp_stage),
                           vp_stage=vp_stage)
        if whole is not None:
            built.load_state_dict(_stage_state(built, whole))
        chunks.append(_placed(built, config, cuda, bf16))
    return chunks


def _placed(built, config, cuda: bool, bf16: bool):
    if cuda:
        built = built.cuda()
    if bf16:
        from megatron.core.transformer.module import Float16Module

        built = Float16Module(config, built)
    return built


def _stage_state(built, whole: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The entries of ``whole`` for the layers ``built`` (one pipeline stage) holds: its local
    layer i is the whole model's layer ``layer_number - 1``."""
    global_index = {str(i): str(layer.layer_number - 1) for i, layer in enumerate(built.decoder.layers)}
    state = {}
    for key in built.state_dict():
        parts = key.split(".")
        if parts[:2] == ["decoder", "layers"]:
            parts[2] = global_index[parts[2]]
        state[key] = whole[".".join(parts)]
    return state


def unwrap(model):
    """The model inside Megatron-Core's DDP and Float16Module wrappers (or the model itself)."""
    while hasattr(model, "module"):
        model = model.module
    return model
