"""What happened to a submitted job: its state and exit code, its log, and cancelling it.

States come from ``squeue`` while SLURM holds the job and from ``sacct`` (accounting) after;
without accounting a cancelled or killed job would look like it never ends. A wait always ends:
in a final state, or when the job stays unknown to both for longer than ``UNKNOWN_GRACE_S``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from nemo_runspec.errors import Interrupted, NemotronError
from nemo_runspec.stop_signals import STOPPED_EXIT

FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
                          "PREEMPTED", "BOOT_FAIL", "DEADLINE", "REVOKED"})
UNKNOWN_GRACE_S = 60.0


class SlurmError(NemotronError):
    """SLURM's commands are missing or refuse a request."""

    default_hint = "is SLURM reachable from here? `sinfo` should list the partitions"


class JobFailed(NemotronError):
    """A job ended in a state other than COMPLETED."""


class JobCancelled(JobFailed):
    """A job was cancelled (scancel, or an earlier job of a chain failed)."""


class JobStopped(JobFailed, Interrupted):
    """A job's command stopped on a signal after saving a checkpoint, and was not requeued."""


@dataclass(frozen=True)
class JobState:
    job_id: str
    state: str  # PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, ..., UNKNOWN
    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES


def no_client(command: str) -> SlurmError:
    return SlurmError(f"{command} not found: this machine has no SLURM client",
                      hint="run on a login node of the cluster, or start the local one: scripts/slurm-cluster.sh start")


def slurm_command(*args: str, check: bool = True) -> str:
    """Run one of SLURM's commands; its stdout, or a one-line SlurmError."""
    if shutil.which(args[0]) is None:
        raise no_client(args[0])
    done = subprocess.run(args, capture_output=True, text=True)
    if check and done.returncode != 0:
        message = (done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}").splitlines()[0]
        raise SlurmError(f"{' '.join(args[:2])}: {message}")
    return done.stdout


def job_state(job_id: str) -> JobState:
    """The job's state now (``UNKNOWN`` when neither squeue nor sacct knows it)."""
    queued = slurm_command("squeue", "-h", "-j", job_id, "-o", "%T|%r", check=False).strip()
    if queued:
        state, _, reason = queued.splitlines()[0].partition("|")
        if state not in FINAL_STATES:
            return JobState(job_id, state, reason=reason if reason not in ("None", "(null)") else "")
    accounted = slurm_command("sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State,ExitCode,Reason", check=False)
    for line in accounted.splitlines():
        state, exit_code, reason = (line.split("|") + ["", ""])[:3]
        code, _, signal = exit_code.partition(":")
        return JobState(job_id, state.split()[0] if state else "UNKNOWN",
                        exit_code=int(code) if code.isdigit() else None,
                        signal=int(signal) if signal.isdigit() else None,
                        reason=reason if reason not in ("None", "(null)") else "")
    return JobState(job_id, "UNKNOWN")


def cancel(job_ids: list[str]) -> None:
    slurm_command("scancel", *job_ids)


def follow(job_id: str, log: Path | None, out: TextIO | None = sys.stdout, poll_s: float = 1.0) -> JobState:
    """Wait for the job to end, copying its log to ``out`` as it grows; the final state."""
    offset, unknown_since = 0, None
    while True:
        state = job_state(job_id)
        offset = _copy_new(log, offset, out)
        if state.done:
            time.sleep(poll_s / 4)  # the last lines may land just after SLURM records the end
            _copy_new(log, offset, out)
            return state
        if state.state == "UNKNOWN":
            unknown_since = unknown_since or time.monotonic()
            if time.monotonic() - unknown_since > UNKNOWN_GRACE_S:
                raise SlurmError(f"job {job_id} is known to neither squeue nor sacct",
                                 hint="the job id may belong to another cluster; `sacct -j ID` tells")
        else:
            unknown_since = None
        time.sleep(poll_s)


def raise_for_state(state: JobState, name: str, log: Path | None, tail_lines: int = 20) -> None:
    """A one-line error for a job that did not complete; its log's tail goes to stderr first."""
    if state.state == "COMPLETED":
        return
    where = f" (log {log})" if log else ""
    if state.state == "CANCELLED":
        why = f": {state.reason}" if state.reason else ""
        raise JobCancelled(f"job {state.job_id} ({name}) was cancelled{why}{where}")
    if state.exit_code == STOPPED_EXIT:
        raise JobStopped(f"job {state.job_id} ({name}) stopped on a signal after saving a checkpoint{where}",
                         hint="submit the same command again to resume from it (a profile with requeue = true "
                              "does that by itself)")
    if log is not None and log.is_file():
        print(f"--- last {tail_lines} lines of {log} ---", file=sys.stderr)
        print("".join(tail(log, tail_lines)), end="", file=sys.stderr)
        print("---", file=sys.stderr)
    code = f" with exit code {state.exit_code}" if state.exit_code is not None else ""
    signal = f", signal {state.signal}" if state.signal else ""
    raise JobFailed(f"job {state.job_id} ({name}) ended {state.state}{code}{signal}{where}",
                    hint=f"`nemotron jobs logs {state.job_id}` shows the whole log")


def tail(path: Path, lines: int) -> list[str]:
    with path.open(encoding="utf-8", errors="replace") as stream:
        return list(deque(stream, maxlen=lines))


def _copy_new(log: Path | None, offset: int, out: TextIO | None) -> int:
    if log is None or out is None or not log.is_file():
        return offset
    with log.open("rb") as stream:
        stream.seek(offset)
        chunk = stream.read()
    if chunk:
        out.write(chunk.decode("utf-8", errors="replace"))
        out.flush()
    return offset + len(chunk)
