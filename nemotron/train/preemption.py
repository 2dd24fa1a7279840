"""Stopping a training run on request: SIGTERM, or SLURM's warning signal before a time limit
or a preemption (SIGUSR1, ``--signal=USR1@<seconds>`` in a profile).

Every rank finishes the step it is in; then all ranks agree (one tiny all-reduce per step, so
a signal that reached only some ranks stops all of them at the same step), save a checkpoint;
rank 0 records the stop in :data:`PREEMPTED_FILE`, and every rank then exits 0. The driver
reads the record and exits with ``STOPPED_EXIT`` (75). The same command resumes from that
checkpoint, so a stopped run ends as an uninterrupted one would.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from nemo_runspec.stop_signals import STOP_SIGNALS

PREEMPTED_FILE = "preempted.json"  # rank 0 writes it: the step and the signal it stopped on
# Torch-free: the stage step (the driver) reads PREEMPTED_FILE.


class StopRequest:
    """The stop signals this process has received (installed as their handler)."""

    def __init__(self) -> None:
        self.received: int | None = None
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._note)

    def _note(self, signum: int, frame) -> None:
        self.received = self.received or signum  # the first says why: later ones are copies (SLURM, torchrun)

    def agreed(self, device) -> int | None:
        """The signal any rank received (all ranks get the same answer), else None."""
        import torch

        flag = torch.tensor([self.received or 0], dtype=torch.int64, device=device)
        if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return int(flag.item()) or None


def record(run_dir: Path, step: int, signum: int) -> None:
    (run_dir / PREEMPTED_FILE).write_text(json.dumps({"step": step, "signal": signal.Signals(signum).name}))


def read(run_dir: Path) -> dict | None:
    """What a stopped run recorded, or None."""
    path = run_dir / PREEMPTED_FILE
    return json.loads(path.read_text()) if path.is_file() else None
