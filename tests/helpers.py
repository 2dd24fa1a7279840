"""Helpers shared by tests: run Python or the CLI in a fresh interpreter of this environment, and
read what a training run wrote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str, *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 120):
    """Run ``code`` in a fresh interpreter of this environment."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True, text=True, cwd=cwd, timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 120):
    """Run the ``nemotron`` command as a user would (same entry point as the console script).

    A wide terminal keeps rich from wrapping long paths, so tests can search the output.
    """
    return subprocess.run(
        [sys.executable, "-m", "nemotron.cli.app", *args],
        capture_output=True, text=True, cwd=cwd, timeout=timeout,
        env={**os.environ, "COLUMNS": "250", **(env or {})},
    )


def kill_cli_when(*args: str, cwd: Path, watch: Path, pattern: str, timeout: float = 300) -> None:
    """Start ``nemotron ARGS`` and SIGKILL its whole process group as soon as a file matching
    ``pattern`` appears under ``watch`` (a checkpoint, a finished unit...)."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "nemotron.cli.app", *args], cwd=cwd, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while not list(watch.rglob(pattern)) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def trained(work: Path, name: str, *args: str, timeout: float = 600) -> Path:
    """``nemotron ARGS`` (a training) into an output root of its own, ``work/name``; returns the
    run directory it made."""
    done = run_cli(*args, f"train.output_root={work / name}", cwd=work, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (work / name).glob("*/*")
    return run_dir


def metrics(run_dir: Path) -> list[dict]:
    """The rows of a training run's ``metrics.jsonl``, one per step."""
    from nemotron.train.metrics import METRICS_FILE, read_metrics

    return read_metrics(run_dir / METRICS_FILE)


def losses(run_dir: Path) -> list[float]:
    return [row["loss"] for row in metrics(run_dir)]
