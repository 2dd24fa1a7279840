"""The one place where Megatron-Core's CUDA-only spots are papered over for CPU runs.

Over 400 lines on purpose: the issues ask for every patch in this one module with its
staleness check; splitting it by Megatron subsystem (engine, Mamba, MoE) is the next step.

Applied by :func:`apply` only when no CUDA device is used. Each patch names the upstream code
it replaces; ``stale_patches()`` reports the ones whose upstream code no longer has the CUDA
call (the test suite fails on any, so an upgrade that fixes Megatron-Core removes the patch).

What is patched and why (megatron-core 0.16):
- ``torch.cuda.current_device``: Megatron allocates buffers, moves RoPE frequencies and
  creates tensor-parallel gather outputs on ``torch.cuda.current_device()``; on CPU it
  returns the CPU device, so every one of those allocations lands on the CPU.
- ``torch.cuda.synchronize``: called by dist_checkpointing's save path; a no-op on CPU.
- ``transformer.utils.get_default_causal_mask``: builds its mask with ``device="cuda"``.
- The RNG tracker (``tensor_parallel.random``): ``CudaRNGStatesTracker`` stores and forks
  CUDA generator states; :class:`CpuRNGStatesTracker` does the same with the CPU generator,
  and :func:`manual_seed` replaces ``model_parallel_cuda_manual_seed``.
- Activation recomputation (``tensor_parallel.random.CheckpointFunction``) saves and restores
  the CUDA generator's state beside the CPU one (``_get_cuda_rng_state`` /
  ``_set_cuda_rng_state``): on CPU those read and set the CPU generator (restoring it twice
  to the same state is harmless).
- ``device="cuda"`` literals in the engine: the optimizer's scale and overflow tensors, the
  gradient-norm reduction (``optimizer.clip_grads``, ``utils.local_multi_tensor_l2_norm``),
  the schedules' token counters and the gradient buffers' warm-up tensor. Those modules see
  :class:`CpuTorch` as ``torch``: the same module, except that a tensor asked for on
  ``"cuda"`` is made on the CPU and ``torch.autocast("cuda")`` is the CPU's autocast.
- ``optimizer.clip_grads.clip_grad_by_total_norm_fp32`` asserts every gradient is a
  ``torch.cuda.FloatTensor``: :func:`_clip_grads_by_total_norm` scales them the same way.
- ``DistributedOptimizer._build_model_and_main_param_groups`` sorts parameters by their
  ``type()`` name and accepts only ``torch.cuda.*Tensor``: :func:`_cuda_type_names` lets the
  CPU parameters answer with the CUDA name of their dtype while it runs (nothing else).
- Not CUDA but its absence: without Apex or TransformerEngine the distributed optimizer runs
  torch's Adam, whose per-parameter state holds ``step``; loading a ``fully_reshardable``
  checkpoint then copies every state key from the checkpoint's tensors, which carry no
  ``step`` (it comes back through the param groups), and fails. :func:`_keep_other_states`
  leaves the keys the checkpoint does not hold as they are. Applied by
  :func:`apply_without_fused_adam` wherever those libraries are missing, GPU runs included.
- gloo has no ``reduce_scatter_tensor`` / ``all_gather_into_tensor`` (what the distributed
  optimizer's gradient and parameter buffers use): :func:`_reduce_scatter_tensor` and
  :func:`_all_gather_into_tensor` do the same through ``all_reduce`` and ``all_gather``. The
  buffers issue them inside ``torch.distributed._coalescing_manager``, which on gloo defers
  the collectives to its exit, after those functions have already read the result; on CPU
  the buffers' manager runs each collective at once (:func:`_one_at_a_time`), and the engine
  modules' collectives asked for ``async_op`` complete before they return (an overlapped
  gradient reduction would otherwise still be running when its handle, the manager's, says
  done: measured as different losses with ``overlap_grad_reduce``).
- The Mamba-2 mixer (``ssm.mamba_mixer``) calls mamba_ssm's and causal-conv1d's CUDA/Triton
  kernels (``mamba_split_conv1d_scan_combined``, ``mamba_chunk_scan_combined``,
  ``causal_conv1d_fn``, the gated ``RMSNorm``) and refuses to build without them
  (``HAVE_MAMBA_SSM``): on CPU it gets the pure-PyTorch implementations of
  :mod:`nemotron.train.ssm_reference` under the same names, ``ExtendedRMSNorm`` (which
  subclassed a ``MagicMock`` at import) is rebuilt on the reference norm with upstream's own
  ``sharded_state_dict``, and the package-version check for packed sequences passes (the
  reference kernels take ``seq_idx``). The mixer module imports Triton kernels of dynamic
  inference at the top (``inference...triton.tensor_ops``); without Triton that import gets a
  stand-in whose functions say they need a GPU (training never calls them).
- Not CUDA but TransformerEngine's absence: ``moe.moe_utils`` binds ``te_general_gemm`` only
  when TE imports, and the router's fp32 gating (``moe_router_dtype``) reads it: it is bound to
  None there (upstream's own fallback, ``torch.mm``); the hybrid stack (``ssm.mamba_block``)
  builds its final norm as ``TENorm`` whatever the layer spec: it gets the local spec's norm
  (same parameter name). The local attention refuses packed-sequence boundaries (THD is
  TE's); a packed SFT batch of a hybrid model brings them (format ``sbhd``) for its Mamba
  layers, and the local attention leaves them to its block-diagonal mask. The local norm
  (``WrappedTorchNorm``) refuses sequence parallelism, which TE's and Apex's norms support by
  marking their parameters ``sequence_parallel``: it does the same (:func:`_sequence_parallel_norm`).
  All four by :func:`apply_without_transformer_engine`.
- Sequence parallelism's collectives (``tensor_parallel.mappings``) reduce-scatter and
  all-gather along the sequence with the same two gloo-less functions: on CPU they get the
  all-reduce / all-gather versions above.
"""

from __future__ import annotations

import contextlib
import functools
import types
from collections.abc import Iterator

import torch

_applied = False
_DATA_PARALLEL_RNG = "data-parallel-rng"
_MODEL_PARALLEL_RNG = "model-parallel-rng"
_EXPERT_PARALLEL_RNG = "expert-parallel-rng"


class CpuRNGStatesTracker:
    """Megatron's RNG tracker interface over the CPU generator (named, forkable states)."""

    def __init__(self) -> None:
        self.states_: dict[str, torch.Tensor] = {}

    def is_initialized(self) -> bool:
        return bool(self.states_)

    def reset(self) -> None:
        self.states_ = {}

    def get_states(self) -> dict[str, torch.Tensor]:
        return {name: state.clone() for name, state in self.states_.items()}

    def set_states(self, states: dict[str, torch.Tensor]) -> None:
        self.states_ = {name: state.clone() for name, state in states.items()}

    def add(self, name: str, seed: int) -> None:
        if name in self.states_:
            raise RuntimeError(f"rng state {name} already exists")
        original = torch.get_rng_state()
        torch.manual_seed(seed)
        self.states_[name] = torch.get_rng_state()
        torch.set_rng_state(original)

    @contextlib.contextmanager
    def fork(self, name: str = _MODEL_PARALLEL_RNG) -> Iterator[None]:
        if name not in self.states_:
            raise RuntimeError(f"rng state {name} is not added")
        original = torch.get_rng_state()
        torch.set_rng_state(self.states_[name])
        try:
            yield
        finally:
            self.states_[name] = torch.get_rng_state()
            torch.set_rng_state(original)


_FACTORIES = ("tensor", "zeros", "ones", "empty", "full", "arange")
# Engine modules whose ``torch`` allocates on "cuda" by name (see the module docstring).
_CUDA_LITERAL_MODULES = (
    "megatron.core.optimizer.optimizer",
    "megatron.core.optimizer.clip_grads",
    "megatron.core.pipeline_parallel.schedules",
    "megatron.core.distributed.param_and_grad_buffer",
    "megatron.core.utils",
)


class CpuTorch(types.ModuleType):
    """``torch`` as the engine modules see it on CPU: "cuda" tensors are made on the CPU."""

    def __init__(self) -> None:
        super().__init__("torch")

    def __getattr__(self, name: str):
        value = getattr(torch, name)
        if name in _FACTORIES:
            return functools.partial(_on_cpu, value)
        if name == "autocast":
            return lambda device_type, *args, **kwargs: torch.autocast("cpu", *args, **kwargs)
        if name == "distributed":
            return _SYNC_DISTRIBUTED
        return value


class _SyncDistributed(types.ModuleType):
    """``torch.distributed`` whose collectives finish before they return, ``async_op`` or not."""

    _COLLECTIVES = ("all_reduce", "all_gather", "broadcast", "reduce_scatter_tensor", "all_gather_into_tensor")

    def __init__(self) -> None:
        super().__init__("torch.distributed")

    def __getattr__(self, name: str):
        value = getattr(torch.distributed, name)
        if name not in self._COLLECTIVES:
            return value

        def synchronous(*args, async_op: bool = False, **kwargs):
            work = value(*args, **kwargs)
            return _Done() if async_op else work

        return synchronous


_SYNC_DISTRIBUTED = _SyncDistributed()


def _on_cpu(factory, *args, **kwargs):
    device = kwargs.get("device")
    if device == "cuda" or (isinstance(device, torch.device) and device.type == "cuda"):
        kwargs["device"] = "cpu"
    return factory(*args, **kwargs)


class _Done:
    """What an ``async_op`` collective returns once it has already finished."""

    def wait(self) -> bool:
        return True

    def is_completed(self) -> bool:
        return True


def _reduce_scatter_tensor(output, input, op=None, group=None, async_op=False):
    """Each rank's equal share of the sum (the op) of every rank's ``input``."""
    reduced = input.clone()
    torch.distributed.all_reduce(reduced, op=op or torch.distributed.ReduceOp.SUM, group=group)
    rank = torch.distributed.get_rank(group)
    output.copy_(reduced.view(-1)[rank * output.numel():(rank + 1) * output.numel()].view_as(output))
    return _Done() if async_op else None


def _all_gather_into_tensor(output, input, group=None, async_op=False):
    """Every rank's ``input`` side by side in ``output``."""
    size = torch.distributed.get_world_size(group)
    parts = list(output.view(-1).chunk(size))
    gathered = [torch.empty_like(input.view(-1)) for _ in range(size)]
    torch.distributed.all_gather(gathered, input.contiguous().view(-1), group=group)
    for part, piece in zip(parts, gathered):
        part.copy_(piece)
    return _Done() if async_op else None


@contextlib.contextmanager
def _one_at_a_time(group=None, device=None, async_ops=False):
    """``_coalescing_manager`` that lets every collective run as it is issued."""
    yield _Done()


def _clip_grads_by_total_norm(parameters, max_norm, total_norm, use_decoupled_grad=False):
    """``clip_grad_by_total_norm_fp32`` without its CUDA type check: every gradient times
    ``max_norm / (total_norm + 1e-6)`` when that is below 1 (the same arithmetic)."""
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    attribute = "decoupled_grad" if use_decoupled_grad else "grad"
    grads = [getattr(p, attribute).detach() for p in parameters if getattr(p, attribute, None) is not None]
    coeff = max_norm / (total_norm + 1.0e-6)
    if coeff < 1.0:
        for grad in grads:
            grad.mul_(coeff)


_CUDA_TYPE_NAMES = {torch.float32: "torch.cuda.FloatTensor", torch.float16: "torch.cuda.HalfTensor",
                    torch.bfloat16: "torch.cuda.BFloat16Tensor"}


def _cuda_type_names(build):
    """Run the distributed optimizer's ``build`` with each parameter's ``type()`` (no
    arguments) answering the CUDA type name of its dtype; restored afterwards."""

    @functools.wraps(build)
    def wrapped(cls, gbuf_ranges, param_gbuf_map, opt_group_ranges, *args, **kwargs):
        params = [p for group in opt_group_ranges for p in group["params"]]
        for param in params:
            real = param.type
            param.type = lambda *a, _real=real, _p=param, **k: _CUDA_TYPE_NAMES[_p.dtype] if not a and not k else _real(*a, **k)
        try:
            return build(cls, gbuf_ranges, param_gbuf_map, opt_group_ranges, *args, **kwargs)
        finally:
            for param in params:
                del param.type

    return classmethod(wrapped)


def _keep_other_states(set_states):
    """``_set_main_param_and_optimizer_states`` for state keys the checkpoint holds only."""

    @functools.wraps(set_states)
    def wrapped(self, model_param, tensors):
        group_index, group_order = self.model_param_group_index_map[model_param]
        main_param = self.optimizer.param_groups[group_index]["params"][group_order]
        present = self.optimizer.state.get(main_param, {})
        return set_states(self, model_param, {**{k: v for k, v in present.items() if k not in tensors}, **tensors})

    return wrapped


def apply_without_fused_adam() -> None:
    """The patch for runs without Apex or TransformerEngine (module docstring); idempotent."""
    from megatron.core.optimizer import distrib_optimizer

    cls = distrib_optimizer.DistributedOptimizer
    if distrib_optimizer.HAVE_APEX_OR_TE or getattr(cls, "_nemotron_keeps_other_states", False):
        return
    cls._set_main_param_and_optimizer_states = _keep_other_states(cls._set_main_param_and_optimizer_states)
    cls._nemotron_keeps_other_states = True


def apply_without_transformer_engine() -> None:
    """The patch for runs without TransformerEngine (module docstring); idempotent."""
    from megatron.core.ssm import mamba_block
    from megatron.core.transformer.dot_product_attention import DotProductAttention
    from megatron.core.transformer.moe import moe_utils
    from megatron.core.transformer.torch_norm import WrappedTorchNorm

    if not moe_utils.HAVE_TE and not hasattr(moe_utils, "te_general_gemm"):
        moe_utils.te_general_gemm = None
    if not getattr(WrappedTorchNorm, "_nemotron_sequence_parallel", False):
        WrappedTorchNorm.__new__ = _sequence_parallel_norm(WrappedTorchNorm.__new__)
        WrappedTorchNorm._nemotron_sequence_parallel = True
    if not moe_utils.HAVE_TE:
        mamba_block.TENorm = _local_norm
        if not getattr(DotProductAttention, "_nemotron_mask_packs", False):
            DotProductAttention.forward = _boundaries_left_to_the_mask(DotProductAttention.forward)
            DotProductAttention._nemotron_mask_packs = True


_TRITON_INFERENCE_OPS = "megatron.core.inference.contexts.attention_context.triton.tensor_ops"


def _stand_in_for_triton_inference_ops() -> None:
    """A module in place of the Triton kernels of dynamic inference, when Triton is missing."""
    import importlib.util
    import sys

    if importlib.util.find_spec("triton") is not None or _TRITON_INFERENCE_OPS in sys.modules:
        return
    stand_in = types.ModuleType(_TRITON_INFERENCE_OPS)

    def needs_gpu(*args, **kwargs):
        raise RuntimeError("Megatron-Core's dynamic inference kernels need Triton on a GPU")

    for name in ("tensor_get_slice_after", "tensor_merge", "tensor_masked_update"):
        setattr(stand_in, name, needs_gpu)
    sys.modules[_TRITON_INFERENCE_OPS] = stand_in


def _tp_sharded_weight(self, prefix="", sharded_offsets=(), metadata=None):
    """``sharded_state_dict`` of upstream's ``ExtendedRMSNorm``: the gated norm's weight is split
    over tensor-parallel ranks along its only axis."""
    from megatron.core import parallel_state
    from megatron.core.transformer.utils import make_sharded_tensors_for_checkpoint

    group = getattr(self, "tp_group", None) or parallel_state.get_tensor_model_parallel_group()
    return make_sharded_tensors_for_checkpoint(self.state_dict(prefix="", keep_vars=True), prefix, {"weight": 0},
                                               sharded_offsets, tp_group=group,
                                               dp_cp_group=(metadata or {}).get("dp_cp_group"))


def _boundaries_left_to_the_mask(forward):
    """The local attention's ``forward`` that takes packed-sequence boundaries of format
    ``sbhd`` (meant for the Mamba layers) and leaves them to its attention mask."""

    @functools.wraps(forward)
    def wrapped(self, *args, packed_seq_params=None, **kwargs):
        if packed_seq_params is not None and packed_seq_params.qkv_format == "sbhd":
            packed_seq_params = None
        return forward(self, *args, packed_seq_params=packed_seq_params, **kwargs)

    return wrapped


def _sequence_parallel_norm(new):
    """``WrappedTorchNorm.__new__`` that also builds under sequence parallelism: the same torch
    norm, its parameters marked ``sequence_parallel`` (what TE's and Apex's norms do), so that
    ``finalize_model_grads`` sums their gradients over the tensor-parallel ranks, each of which
    saw a slice of the sequence."""

    @functools.wraps(new)
    def wrapped(cls, config, *args, **kwargs):
        if not config.sequence_parallel:
            return new(cls, config, *args, **kwargs)
        import copy

        plain = copy.copy(config)
        plain.sequence_parallel = False
        norm = new(cls, plain, *args, **kwargs)
        for param in norm.parameters():
            param.sequence_parallel = True
        return norm

    return wrapped


def _local_norm(config, hidden_size: int, eps: float = 1e-5):
    """The norm Megatron-Core's local layer spec uses, where ``TENorm`` would be built."""
    from megatron.core.models.backends import LocalSpecProvider

    norm = LocalSpecProvider().layer_norm(rms_norm=config.normalization == "RMSNorm", for_qk=False)
    return norm(config=config, hidden_size=hidden_size, eps=eps)


def _apply_mamba_reference_kernels() -> None:
    """The Mamba-2 mixer on the reference kernels (module docstring)."""
    _stand_in_for_triton_inference_ops()
    from megatron.core.ssm import mamba_mixer

    from nemotron.train import ssm_reference

    mamba_mixer.HAVE_MAMBA_SSM = True
    mamba_mixer.mamba_split_conv1d_scan_combined = ssm_reference.mamba_split_conv1d_scan_combined
    mamba_mixer.mamba_chunk_scan_combined = ssm_reference.mamba_chunk_scan_combined
    mamba_mixer.causal_conv1d_fn = ssm_reference.causal_conv1d_fn
    mamba_mixer.RMSNormGated = ssm_reference.RMSNormGated
    mamba_mixer.ExtendedRMSNorm = type("ExtendedRMSNorm", (ssm_reference.RMSNormGated,),
                                       {"sharded_state_dict": _tp_sharded_weight})
    mamba_mixer._check_mamba_sequence_packing_support = lambda for_inference_not_training=True: (True, None)


def _cpu_causal_mask(sq: int) -> torch.Tensor:
    return torch.triu(torch.ones(sq, sq, dtype=torch.bool), diagonal=1)


def apply() -> None:
    """Install the CPU patches (idempotent). Call before building any Megatron module."""
    global _applied
    if _applied:
        return
    import importlib

    import megatron.core.optimizer.optimizer as megatron_optimizer
    import megatron.core.transformer.utils as transformer_utils
    from megatron.core.tensor_parallel import random as tp_random

    torch.cuda.current_device = lambda: torch.device("cpu")
    torch.cuda.synchronize = lambda *args, **kwargs: None
    transformer_utils.get_default_causal_mask = _cpu_causal_mask
    tp_random._CUDA_RNG_STATE_TRACKER = CpuRNGStatesTracker()
    tp_random._CUDA_RNG_STATE_TRACKER_INITIALIZED = True
    tp_random._get_cuda_rng_state = lambda *args, **kwargs: torch.get_rng_state()
    tp_random._set_cuda_rng_state = lambda state, *args, **kwargs: torch.set_rng_state(state)
    for module in _CUDA_LITERAL_MODULES:
        importlib.import_module(module).torch = CpuTorch()
    megatron_optimizer.clip_grad_by_total_norm_fp32 = _clip_grads_by_total_norm
    from megatron.core.optimizer.distrib_optimizer import DistributedOptimizer

    DistributedOptimizer._build_model_and_main_param_groups = _cuda_type_names(
        DistributedOptimizer.__dict__["_build_model_and_main_param_groups"].__func__)
    buffers = importlib.import_module("megatron.core.distributed.param_and_grad_buffer")
    buffers.dist_reduce_scatter_func = _reduce_scatter_tensor
    buffers.dist_all_gather_func = _all_gather_into_tensor
    buffers._coalescing_manager = _one_at_a_time
    mappings = importlib.import_module("megatron.core.tensor_parallel.mappings")
    mappings.dist_reduce_scatter_func = _reduce_scatter_tensor
    mappings.dist_all_gather_func = _all_gather_into_tensor
    apply_without_fused_adam()
    apply_without_transformer_engine()
    _apply_mamba_reference_kernels()
    _applied = True


def manual_seed(seed: int, tp_rank: int) -> None:
    """The CPU counterpart of ``model_parallel_cuda_manual_seed``: same seeds per state."""
    from megatron.core.tensor_parallel import random as tp_random

    torch.manual_seed(seed)
    tracker = tp_random._CUDA_RNG_STATE_TRACKER
    tracker.reset()
    tracker.add(_DATA_PARALLEL_RNG, seed)
    tracker.add(_MODEL_PARALLEL_RNG, seed + 2718 + tp_rank)
    tracker.add(_EXPERT_PARALLEL_RNG, seed + 1024)


# Upstream functions and the CUDA-only text each patch exists for.
_UPSTREAM = {
    "megatron.core.transformer.utils:get_default_causal_mask": 'device="cuda"',
    "megatron.core.tensor_parallel.random:model_parallel_cuda_manual_seed": "torch.cuda.manual_seed",
    "megatron.core.tensor_parallel.random:CudaRNGStatesTracker.add": "torch.cuda",
    "megatron.core.models.common.embeddings.rotary_pos_embedding:RotaryEmbedding.get_emb": "torch.cuda.current_device()",
    "megatron.core.utils:GlobalMemoryBuffer.get_tensor": "torch.cuda.current_device()",
    "megatron.core.tensor_parallel.random:_get_cuda_rng_state": "torch.cuda.random.get_rng_state",
    "megatron.core.tensor_parallel.random:_set_cuda_rng_state": "torch.cuda",
    "megatron.core.optimizer.optimizer:FP32Optimizer.__init__": "device='cuda'",
    "megatron.core.optimizer.clip_grads:get_grad_norm_fp32": "device='cuda'",
    "megatron.core.optimizer.clip_grads:clip_grad_by_total_norm_fp32": "torch.cuda.FloatTensor",
    "megatron.core.utils:local_multi_tensor_l2_norm": 'device="cuda"',
    "megatron.core.pipeline_parallel.schedules:forward_backward_no_pipelining": 'device="cuda"',
    "megatron.core.optimizer.distrib_optimizer:DistributedOptimizer._set_main_param_and_optimizer_states":
        "dst_tensors[key].copy_(tensors[key])",
    "megatron.core.optimizer.distrib_optimizer:DistributedOptimizer._build_model_and_main_param_groups":
        "torch.cuda.FloatTensor",
    "megatron.core.distributed.param_and_grad_buffer:_ParamAndGradBucketGroup.start_grad_sync":
        "_coalescing_manager",
    "megatron.core.ssm.mamba_mixer:": "from mamba_ssm.ops.triton.ssd_combined import",
    "megatron.core.ssm.mamba_mixer:MambaMixer.__init__": "HAVE_MAMBA_SSM",
    "megatron.core.ssm.mamba_mixer:MambaMixer._ssm_training": "mamba_split_conv1d_scan_combined(",
    "megatron.core.ssm.mamba_mixer:MambaMixer._ssm_prefill": "causal_conv1d_fn(",
    "megatron.core.ssm.mamba_mixer:_check_mamba_sequence_packing_support": "is_mamba_min_version",
    "megatron.core.ssm.mamba_mixer:ExtendedRMSNorm": "def sharded_state_dict",
    "megatron.core.ssm.mamba_mixer:ExtendedRMSNorm.sharded_state_dict": "make_sharded_tensors_for_checkpoint",
    f"{_TRITON_INFERENCE_OPS}:": "import triton",
    "megatron.core.transformer.moe.moe_utils:RouterGatingLinearFunction.forward": "te_general_gemm is not None",
    "megatron.core.ssm.mamba_block:MambaStack.__init__": "self.final_norm = TENorm(",
    "megatron.core.transformer.dot_product_attention:DotProductAttention.forward": "assert packed_seq_params is None",
    "megatron.core.transformer.torch_norm:WrappedTorchNorm.__new__": "assert not config.sequence_parallel",
    "megatron.core.tensor_parallel.mappings:": "dist_reduce_scatter_func = torch.distributed.reduce_scatter_tensor",
}
# Patches for a name upstream does not bind: stale once the module's source binds it itself.
_UPSTREAM_UNBOUND = {"megatron.core.transformer.moe.moe_utils": "te_general_gemm = None"}


def stale_patches() -> list[str]:
    """Upstream functions that no longer contain the CUDA-only code a patch works around.

    Reads the installed source files (not the live objects, which :func:`apply` replaces).
    """
    import ast
    import importlib.util

    stale = []
    for target, cuda_text in _UPSTREAM.items():
        module_name, qualname = target.split(":")
        source = open(importlib.util.find_spec(module_name).origin, encoding="utf-8").read()
        node: ast.AST | None = ast.parse(source)
        for part in filter(None, qualname.split(".")):  # "module:" is the module's own code
            node = next((n for n in ast.iter_child_nodes(node)
                         if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part), None)
            if node is None:
                break
        segment = source if isinstance(node, ast.Module) else node and ast.get_source_segment(source, node)
        if cuda_text not in (segment or ""):
            stale.append(target)
    for module_name, binding in _UPSTREAM_UNBOUND.items():
        if binding in open(importlib.util.find_spec(module_name).origin, encoding="utf-8").read():
            stale.append(f"{module_name}:{binding}")
    return stale
