"""Stop signals and the processes that pass them on.

SIGTERM (a cancel, a preemption) and SIGUSR1 (SLURM's warning before a time limit, a profile's
``signal = "USR1@120"``) ask training to save a checkpoint and stop; the command stopped that
way exits with :data:`STOPPED_EXIT` (its training processes exit 0 and leave a record). Between the user's command and the training processes sit
parents (submitit's job process, the stage's driver, torchrun) that must neither die of the
signal nor swallow it: :func:`run_passing_on_stops` runs a child and passes the first stop
signal on. SLURM signals every process of a job step at once, so a child may get the signal
twice, from SLURM and from its parent; the receivers only note that a stop was asked for.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
STOPPED_EXIT = 75  # EX_TEMPFAIL (sysexits.h): stopped on request after saving, try again


def run_passing_on_stops(command: list[str], *, env: dict[str, str] | None = None, cwd: str | None = None,
                         as_signal: int | None = None, ignore_usr1: bool = False) -> int:
    """Run ``command`` to its end and return its exit status; the first stop signal this
    process receives goes on to it (as ``as_signal`` when given: torchrun dies of SIGUSR1 but
    passes SIGTERM on to its workers). ``ignore_usr1`` starts the child with SIGUSR1 ignored,
    for a child like torchrun that would die of the copy SLURM sends every process of a step;
    its own children still install their handlers."""
    preexec: Callable[[], object] | None = (lambda: signal.signal(signal.SIGUSR1, signal.SIG_IGN)) if ignore_usr1 else None
    child = subprocess.Popen(command, env=env, cwd=cwd, preexec_fn=preexec)
    passed = False

    def pass_on(signum, frame) -> None:
        nonlocal passed
        if not passed:  # a second copy is the same request, and torchrun would cut its workers' save short
            passed = True
            child.send_signal(as_signal or signum)

    # Signal handlers belong to the main thread; a child run from another thread only waits.
    on_main = threading.current_thread() is threading.main_thread()
    previous = {signum: signal.signal(signum, pass_on) for signum in STOP_SIGNALS} if on_main else {}
    try:
        return child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
