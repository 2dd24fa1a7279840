"""Checkpoints: Megatron-Core distributed checkpoints plus per-rank optimizer and RNG state.

Layout under ``<run_dir>/checkpoints``::

    iter_0000020/model/          dist_checkpointing (torch_dist), any tensor-parallel layout
    iter_0000020/ranks/N.pt      optimizer and RNG state of rank N (torch.save, tensors only)
    iter_0000020/trainer.json    step, samples and tokens consumed, layout, model architecture
    latest                       the name of the newest complete checkpoint

Every rank writes into ``iter_N.tmp``; after a barrier rank 0 renames it to ``iter_N`` and
then points ``latest`` at it, both by atomic rename. A checkpoint being written when the run
is killed is never picked up: it is still a ``.tmp`` directory, or ``latest`` does not name it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from nemo_runspec import atomic
from nemotron.kit.model_formats import LATEST, TRAINER_FILE


@dataclass
class TrainerState:
    step: int
    consumed_samples: int
    tokens_seen: int
    tp_size: int
    world_size: int
    architecture: dict[str, Any]


def checkpoint_name(step: int) -> str:
    return f"iter_{step:07d}"


def save(root: Path, step_state: TrainerState, model, optimizer, rng: dict[str, torch.Tensor], rank: int) -> Path:
    from megatron.core import dist_checkpointing

    from nemotron.train.gpt import unwrap

    final = root / checkpoint_name(step_state.step)
    tmp = final.with_name(final.name + ".tmp")
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "model").mkdir(parents=True)
        (tmp / "ranks").mkdir()
    torch.distributed.barrier()
    dist_checkpointing.save(unwrap(model).sharded_state_dict(), str(tmp / "model"))
    torch.save({"optimizer": optimizer.state_dict(), "rng": rng}, tmp / "ranks" / f"{rank}.pt")
    torch.distributed.barrier()
    if rank == 0:
        (tmp / TRAINER_FILE).write_text(json.dumps(asdict(step_state), indent=1))
        shutil.rmtree(final, ignore_errors=True)  # a rerun past a crash may have left one
        os.replace(tmp, final)
        atomic.write_text(root / LATEST, final.name)
    torch.distributed.barrier()
    return final


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
    from megatron.core import dist_checkpointing

    from nemotron.train.gpt import unwrap

    gpt = unwrap(model)
    wanted = gpt.sharded_state_dict()
    state = dist_checkpointing.load(wanted, str(checkpoint / "model"))
    # The checkpoint's common.pt comes back beside the weights: Megatron-LM's holds its args,
    # iteration and optimizer settings, which are not the model's.
    gpt.load_state_dict({key: value for key, value in state.items() if key in wanted})


def load_rank_state(checkpoint: Path, rank: int) -> dict[str, Any]:
    """Optimizer and RNG state of ``rank`` (tensors and plain containers only)."""
    return torch.load(checkpoint / "ranks" / f"{rank}.pt", weights_only=True)
