"""Checkpoints: Megatron-Core distributed checkpoints of the model and the optimizer, plus
per-rank RNG state.

Layout under ``<run_dir>/checkpoints``::

    iter_0000020/model/          dist_checkpointing (torch_dist) of the model's sharded state
    iter_0000020/optimizer/      dist_checkpointing of the optimizer's sharded state
    iter_0000020/ranks/N.pt      RNG state of rank N (torch.save, tensors only)
    iter_0000020/trainer.json    step, samples and tokens consumed, layout, model architecture
    latest                       the name of the newest complete checkpoint

Both distributed checkpoints hold every tensor at its place in the whole model, so a run
saved in one layout (tensor x pipeline x data parallel, interleaved or not) resumes in
another: each rank loads its own shards (Megatron-Core reshards). The RNG states are the
layout's own and are restored only in the same layout.

Every rank writes into ``iter_N.tmp``; after a barrier rank 0 renames it to ``iter_N`` and
then points ``latest`` at it, both by atomic rename. A checkpoint being written when the run
is killed is never picked up: it is still a ``.tmp`` directory, or ``latest`` does not name it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from nemo_runspec import atomic
from nemotron.kit.model_formats import LATEST, TRAINER_FILE


# The distributed optimizer's state in the whole model's terms (gathered on data-parallel rank
# 0 when saved), so it reshards across tensor and pipeline parallel sizes too, not only data.
_OPTIMIZER_FORMAT = {"distrib_optim_sharding_type": "fully_reshardable"}
# On CPU the gather goes through the gloo group (the other path moves tensors to CUDA).
_OPTIMIZER_FORMAT_CPU = {**_OPTIMIZER_FORMAT, "distrib_optim_fully_reshardable_mem_efficient": True}


def _optimizer_format() -> dict[str, Any]:
    return _OPTIMIZER_FORMAT if torch.cuda.is_available() and torch.cuda.is_initialized() else _OPTIMIZER_FORMAT_CPU


@dataclass
class TrainerState:
    step: int
    consumed_samples: int
    tokens_seen: int
    tp_size: int
    world_size: int
    architecture: dict[str, Any]
    layout: dict[str, Any] | None = None  # tensor, pipeline, virtual pipeline and data parallel sizes


def checkpoint_name(step: int) -> str:
    return f"iter_{step:07d}"



def start_writer_queue() -> None:
    """Start Megatron-Core's checkpoint-writer results queue now, with the stop signals ignored.

    The queue lives in a Manager process that Megatron spawns at the first save and keeps. SLURM
    signals every process of a job step, and a spawned process starts with the default action
    for SIGUSR1/SIGTERM, so the signal that asks for the final checkpoint killed the Manager
    and the save failed (EOFError, BrokenPipeError). An ignored signal stays ignored across the
    spawn, and the training process gets its own handlers back at once."""
    import signal

    from megatron.core.dist_checkpointing.strategies import filesystem_async

    from nemo_runspec.stop_signals import STOP_SIGNALS

    start = getattr(filesystem_async, "_get_write_results_queue", None)
    if start is None:  # a Megatron-Core without it: its writer has no Manager to protect
        return
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in STOP_SIGNALS}
    try:
        start()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

def _save_strategy():
    """On CPU, one writer per rank. Megatron-Core's writer otherwise starts two per rank and
    records their results in ``.metadata`` in the order they finish, so two identical runs can
    write different bytes; a CPU checkpoint (tiny models) gains nothing from the second writer.
    On GPUs the default (None) keeps both."""
    if torch.cuda.is_available():
        return None
    from megatron.core.dist_checkpointing.strategies.torch import TorchDistSaveShardedStrategy

    return TorchDistSaveShardedStrategy("torch_dist", 1, thread_count=1)


@contextlib.contextmanager
def _save_ids_from(final: Path) -> Iterator[None]:
    """torch's checkpoint writer puts a random uuid4 (``save_id``) into each ``.metadata``,
    which no reader uses (torch 2.13: it is only stored); drawn from the checkpoint's name
    instead, two identical runs write identical checkpoints, byte for byte."""
    from torch.distributed.checkpoint import filesystem

    drawn = itertools.count()
    random_ids = filesystem._generate_uuid
    filesystem._generate_uuid = lambda: str(uuid.uuid5(uuid.NAMESPACE_URL, f"nemotron:{final.name}:{next(drawn)}"))
    try:
        yield
    finally:
        filesystem._generate_uuid = random_ids


def save(root: Path, step_state: TrainerState, chunks: list, optimizer, rng: dict[str, torch.Tensor], rank: int) -> Path:
    """Write this rank's model ``chunks`` and Megatron-Core ``optimizer`` (None: the model
    only) at ``step_state``; every rank takes part."""
    from megatron.core import dist_checkpointing

    final = root / checkpoint_name(step_state.step)
    tmp = final.with_name(final.name + ".tmp")
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        for part in ("model", "optimizer", "ranks"):
            (tmp / part).mkdir(parents=True)
    torch.distributed.barrier()
    strategy = _save_strategy()
    # torch's checkpoint writer records the path it is given in each ``.metadata``: given one
    # relative to the checkpoints folder, a checkpoint's bytes do not depend on where its run
    # lives, so a reproduction in a scratch folder (``nemotron artifact reproduce``) writes the
    # same bytes, whether train.output_root was relative or absolute.
    with _save_ids_from(final), contextlib.chdir(root):
        dist_checkpointing.save(model_state(chunks), f"{tmp.name}/model", sharded_strategy=strategy)
        if optimizer is not None:
            dist_checkpointing.save(optimizer.sharded_state_dict(model_state(chunks), metadata=_optimizer_format()),
                                    f"{tmp.name}/optimizer", sharded_strategy=strategy)
    torch.save({"rng": rng}, tmp / "ranks" / f"{rank}.pt")
    torch.distributed.barrier()
    if rank == 0:
        (tmp / TRAINER_FILE).write_text(json.dumps(asdict(step_state), indent=1))
        shutil.rmtree(final, ignore_errors=True)  # a rerun past a crash may have left one
        os.replace(tmp, final)
        atomic.write_text(root / LATEST, final.name)
    torch.distributed.barrier()
    return final


def load(checkpoint: Path, run, layout: dict[str, Any], rank: int) -> bool:
    """Load model, optimizer and (in the same ``layout``) RNG state of ``checkpoint`` into
    ``run``; True when the checkpoint was written in another layout (resharded)."""
    from megatron.core import dist_checkpointing

    from nemotron.train import distributed

    if not (checkpoint / "optimizer").is_dir():
        raise RuntimeError(f"{checkpoint} holds no optimizer/ (written before training went through "
                           f"Megatron-Core's optimizer); start the run in a new run directory")
    recorded = read_trainer_state(checkpoint).layout or {}
    if recorded.get("distributed_optimizer", False) != layout["distributed_optimizer"]:
        # Megatron-Core's two optimizers keep their state in different forms (measured: a
        # KeyError deep in the load), so the optimizer must be the kind that wrote it.
        raise RuntimeError(f"{checkpoint} was written with train.use_distributed_optimizer="
                           f"{recorded.get('distributed_optimizer', False)}; resume with the same setting")
    load_model(checkpoint, run.chunks)
    _give_state(run.optimizer)
    wanted = run.optimizer.sharded_state_dict(model_state(run.chunks), is_loading=True, metadata=_optimizer_format())
    run.optimizer.load_state_dict(dist_checkpointing.load(wanted, str(checkpoint / "optimizer")))
    _own_steps(run.optimizer)
    if recorded != layout:
        return True
    distributed.set_rng_state(torch.load(checkpoint / "ranks" / f"{rank}.pt", weights_only=True)["rng"])
    return False


def _give_state(optimizer) -> None:
    """A distributed optimizer that has not stepped holds no state to load into: give it some,
    by one step with zero gradients at rate and weight decay 0 (what Megatron-Core's own
    loader does for its FSDP optimizer), so nothing moves before the checkpoint replaces it."""
    from megatron.core.optimizer.distrib_optimizer import DistributedOptimizer

    for sub in getattr(optimizer, "chained_optimizers", [optimizer]):
        if not isinstance(sub, DistributedOptimizer) or sub.optimizer.state:
            continue
        groups = sub.optimizer.param_groups
        kept = [(group["lr"], group["weight_decay"]) for group in groups]
        for group in groups:
            group["lr"] = group["weight_decay"] = 0.0
        sub._init_optimizer_states_with_dummy_values()
        for group, (lr, decay) in zip(groups, kept):
            group["lr"], group["weight_decay"] = lr, decay


def _own_steps(optimizer) -> None:
    """Give every parameter its own Adam ``step`` tensor. Megatron-Core's distributed optimizer
    loads one tensor into all of them (torch's Adam then adds 1 to it once per parameter per
    step: the second step after a resume trained with wrong bias corrections, measured)."""
    for sub in getattr(optimizer, "chained_optimizers", [optimizer]):
        inner = getattr(sub, "optimizer", None)
        for state in (inner.state.values() if inner is not None else ()):
            if isinstance(state.get("step"), torch.Tensor):
                state["step"] = state["step"].clone()


def layout_words(layout: dict[str, Any] | None) -> str:
    if not layout:
        return "an unrecorded layout"
    words = f"TP{layout['tensor_parallel']} x PP{layout['pipeline_parallel']}"
    if layout.get("virtual_pipeline_parallel"):
        words += f" (VPP{layout['virtual_pipeline_parallel']})"
    return f"{words} x DP{layout['data_parallel']}"


def model_state(chunks: list) -> dict[str, Any]:
    """The sharded state of this rank's model chunks; with several (an interleaved pipeline)
    one entry per chunk. Each tensor is named and placed by its place in the whole model, so
    the same checkpoint loads into any layout."""
    from nemotron.train.module_wrappers import unwrap

    states = [unwrap(chunk).sharded_state_dict() for chunk in chunks]
    return states[0] if len(states) == 1 else {f"model{i}": state for i, state in enumerate(states)}


def find_latest(root: Path) -> Path | None:
    """The newest complete checkpoint under ``root``, or None."""
    pointer = root / LATEST
    if pointer.is_file():
        candidate = root / pointer.read_text().strip()
        if (candidate / TRAINER_FILE).is_file():
            return candidate
    complete = sorted(p for p in root.glob("iter_???????") if (p / TRAINER_FILE).is_file()) if root.is_dir() else []
    return complete[-1] if complete else None


def read_trainer_state(checkpoint: Path) -> TrainerState:
    return TrainerState(**json.loads((checkpoint / TRAINER_FILE).read_text()))


def load_model(checkpoint: Path, model) -> None:
    """The weights of ``checkpoint`` into ``model``: one model or this rank's chunks, in any layout."""
    load_weights(checkpoint / "model", model)


def load_weights(directory: Path, model) -> None:
    """The weights of a dist_checkpointing folder into ``model`` (one, or this rank's chunks)."""
    from megatron.core import dist_checkpointing

    from nemotron.train.module_wrappers import unwrap

    chunks = [unwrap(chunk) for chunk in (model if isinstance(model, list) else [model])]
    wanted = model_state(chunks)
    state = dist_checkpointing.load(wanted, str(directory))
    # The checkpoint's common.pt comes back beside the weights: Megatron-LM's holds its args,
    # iteration and optimizer settings, which are not the model's.
    for i, chunk in enumerate(chunks):
        chunk_wanted, chunk_state = (wanted, state) if len(chunks) == 1 else (wanted[f"model{i}"], state[f"model{i}"])
        chunk.load_state_dict({key: value for key, value in chunk_state.items() if key in chunk_wanted})
