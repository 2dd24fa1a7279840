"""A stop signal (SIGTERM, SLURM's warning SIGUSR1) mid-run: every rank finishes its step, a
checkpoint is saved, the command exits 75 (EX_TEMPFAIL) saying so, and the same command then
ends at the losses of an uninterrupted run, bit for bit."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import losses, run_cli

pytestmark = pytest.mark.slow

RUN = ["nano3", "pretrain", "train.steps=12", "train.checkpoint_interval=10", "train.eval_interval=0",
       "train.micro_batch_size=2", "train.global_batch_size=4"]


@pytest.fixture(scope="module")
def work(prepared) -> Path:
    return prepared


def signal_after(work: Path, out: Path, args: list[str], signum: int, steps: int) -> subprocess.CompletedProcess:
    """Run the command and send ``signum`` to it once ``steps`` steps are in its metrics."""
    command = [sys.executable, "-m", "nemotron.cli.app", *RUN, *args, f"train.output_root={out}"]
    proc = subprocess.Popen(command, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        metrics = list(out.glob("*/*/metrics.jsonl"))
        if metrics and len(metrics[0].read_text().splitlines()) >= steps:
            break
        time.sleep(0.02)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=240)
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


@pytest.mark.parametrize(("args", "signum"), [([], signal.SIGUSR1), (["train.nproc_per_node=2"], signal.SIGTERM)],
                         ids=["one-process-SIGUSR1", "torchrun-dp2-SIGTERM"])
def test_a_stopped_run_checkpoints_exits_75_and_resumes_to_the_same_losses(work, args, signum):
    name = "-".join(a.replace("=", "") for a in args) or "one"
    reference = run_cli(*RUN, *args, f"train.output_root={work / f'{name}-reference'}", cwd=work, timeout=600)
    assert reference.returncode == 0, reference.stderr[-3000:]
    out = work / f"{name}-stopped"
    stopped = signal_after(work, out, args, signum, steps=3)
    assert stopped.returncode == 75, stopped.stderr[-3000:]
    (run_dir,) = out.glob("*/*")
    record = json.loads((run_dir / "preempted.json").read_text())
    assert record["signal"] == signal.Signals(signum).name and 3 <= record["step"] < 10
    assert (run_dir / "checkpoints" / f"iter_{record['step']:07d}" / "trainer.json").is_file()
    assert f"error: training stopped at step {record['step']} on {record['signal']}" in stopped.stderr
    assert "hint: run the same command to resume" in stopped.stderr

    resumed = run_cli(*RUN, *args, f"train.output_root={out}", cwd=work, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {run_dir / 'checkpoints' / ('iter_%07d' % record['step'])}" in resumed.stdout
    assert not (run_dir / "preempted.json").exists()
    (reference_dir,) = (work / f"{name}-reference").glob("*/*")
    assert losses(run_dir) == losses(reference_dir)  # bitwise
