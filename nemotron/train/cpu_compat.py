"""The one place where Megatron-Core's CUDA-only spots are papered over for CPU runs.

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
"""

from __future__ import annotations

import contextlib
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


def _cpu_causal_mask(sq: int) -> torch.Tensor:
    return torch.triu(torch.ones(sq, sq, dtype=torch.bool), diagonal=1)


def apply() -> None:
    """Install the CPU patches (idempotent). Call before building any Megatron module."""
    global _applied
    if _applied:
        return
    import megatron.core.transformer.utils as transformer_utils
    from megatron.core.tensor_parallel import random as tp_random

    torch.cuda.current_device = lambda: torch.device("cpu")
    torch.cuda.synchronize = lambda *args, **kwargs: None
    transformer_utils.get_default_causal_mask = _cpu_causal_mask
    tp_random._CUDA_RNG_STATE_TRACKER = CpuRNGStatesTracker()
    tp_random._CUDA_RNG_STATE_TRACKER_INITIALIZED = True
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
}


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
        for part in qualname.split("."):
            node = next((n for n in ast.iter_child_nodes(node)
                         if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part), None)
            if node is None:
                break
        if node is None or cuda_text not in (ast.get_source_segment(source, node) or ""):
            stale.append(target)
    return stale
