"""The trainer's models: a ``model`` config (conf/model/*.yaml) built as Megatron-Core's
``GPTModel`` (``architecture: gpt``, dense or MoE, :mod:`nemotron.train.gpt`) or its hybrid
Mamba model (``architecture: hybrid``, :mod:`nemotron.train.hybrid`), on this rank's device.

Configs the trainer cannot build are refused first, naming the reason
(:mod:`nemotron.train.buildable`). TransformerEngine's layer specs are used when it is installed
and a GPU is used, Megatron-Core's local modules otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from nemotron.schemas.model import ModelConfig, model_config
from nemotron.schemas.train import TrainConfig
from nemotron.train import gpt, hybrid
from nemotron.train.buildable import UnsupportedModel, check_supported  # noqa: F401  (the builder's rules)
from nemotron.train.module_wrappers import unwrap  # noqa: F401  (where callers look for it)
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
    if cuda and model.architecture == "hybrid" and not _has_mamba_kernels():
        raise UnsupportedModel(f"model {model.name!r} has Mamba-2 layers, whose GPU kernels (mamba_ssm, "
                               "causal-conv1d) are not installed", hint="use the GPU image (docker/gpu.Dockerfile), "
                               "which builds them")
    return hybrid.stack_spec(model, use_te) if model.architecture == "hybrid" else gpt.layer_spec(model, use_te)


def _has_mamba_kernels() -> bool:
    """mamba_ssm's and causal-conv1d's, or the reference ones ``cpu_compat`` put in their place."""
    from megatron.core.ssm import mamba_mixer

    return bool(mamba_mixer.HAVE_MAMBA_SSM) and mamba_mixer.causal_conv1d_fn is not None


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

    On CPU a model-parallel rank (tensor, pipeline or expert parallel) starts from exactly the
    weights one process would (:func:`_one_process_weights`), so layouts can be compared step
    by step. On GPUs each rank initializes its own part, as Megatron-LM does (the whole model
    need not fit on one GPU)."""
    from megatron.core import parallel_state

    check_supported(model, cuda)
    tp = layout.tensor_parallel
    config = megatron_config(model, tp, cuda, bf16, layout)
    # gloo matches a batch of sends and receives between the same two ranks out of order (a
    # pipeline of two, interleaved, gets another micro-batch's activations: measured), so CPU
    # runs send and receive one tensor at a time.
    config.batch_p2p_comm = cuda
    spec = layer_spec(model, cuda)
    chunks = []
    for stage in range(layout.virtual_pipeline_parallel or 1):
        vp_stage = stage if layout.virtual_pipeline_parallel else None
        chunks.append(_construct(config, model, spec, vocab_size, tp,
                                 pre_process=parallel_state.is_pipeline_first_stage(ignore_virtual=False, vp_stage=vp_stage),
                                 post_process=parallel_state.is_pipeline_last_stage(ignore_virtual=False, vp_stage=vp_stage),
                                 vp_stage=vp_stage))
    if not cuda and layout.tensor_parallel * layout.pipeline_parallel * layout.expert_parallel > 1:
        _one_process_weights(chunks, model, vocab_size, layout)
    return [_placed(chunk, config, cuda, bf16) for chunk in chunks]


def _one_process_weights(chunks: list, model: ModelConfig, vocab_size: int, layout: TrainConfig) -> None:
    """Load into ``chunks`` the weights one process builds with the same seed.

    Megatron-Core initializes some parameters per part, not as slices of one whole (a Mamba
    mixer's conv, ``A_log`` and ``dt_bias`` under tensor parallelism, each expert-parallel rank's
    experts, each pipeline stage's layers), so every rank builds the whole model in a
    one-process layout (model parallel 1, all ranks data-parallel replicas), saves it through
    dist_checkpointing and loads its own part back: the resharding a checkpoint gets anyway."""
    import shutil
    import tempfile

    from megatron.core import dist_checkpointing, parallel_state

    from nemotron.train import checkpoint, cpu_compat

    rank = torch.distributed.get_rank()
    place = [tempfile.mkdtemp(prefix="nemotron-init-") if rank == 0 else None]
    torch.distributed.broadcast_object_list(place, src=0)
    directory = place[0]
    parallel_state.destroy_model_parallel()
    parallel_state.initialize_model_parallel()
    rng = torch.get_rng_state()
    cpu_compat.manual_seed(layout.seed, 0)
    one = megatron_config(model, 1, False, False)
    whole = _construct(one, model, layer_spec(model, False), vocab_size, 1)
    dist_checkpointing.save(checkpoint.model_state([whole]), directory)
    torch.distributed.barrier()
    parallel_state.destroy_model_parallel()
    parallel_state.initialize_model_parallel(
        tensor_model_parallel_size=layout.tensor_parallel, pipeline_model_parallel_size=layout.pipeline_parallel,
        virtual_pipeline_model_parallel_size=layout.virtual_pipeline_parallel,
        context_parallel_size=layout.context_parallel, expert_model_parallel_size=layout.expert_parallel)
    cpu_compat.manual_seed(layout.seed, parallel_state.get_tensor_model_parallel_rank())
    torch.set_rng_state(rng)
    checkpoint.load_weights(Path(directory), chunks)
    torch.distributed.barrier()
    if rank == 0:
        shutil.rmtree(directory, ignore_errors=True)


def _placed(built, config, cuda: bool, bf16: bool):
    if cuda:
        built = built.cuda()
    if bf16:
        from megatron.core.transformer.module import Float16Module

        built = Float16Module(config, built)
    return built
