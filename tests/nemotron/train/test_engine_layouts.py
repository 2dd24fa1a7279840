"""Megatron-Core's engine in every layout this CPU can run (gloo, two processes): each gives the
loss trajectory of one process for the same global batch, resumes bit for bit after kill -9,
and its checkpoints load into another layout (TP2 x PP2 runs four processes on two cores).

Measured (tiny model, 4 layers, 6 steps, micro-batch 1, global batch 4): the largest loss
difference against one process is 9.5e-7 in every layout (float summation order); resumes
are bit-identical; resharded continuations differ by at most 9.5e-7.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import kill_cli_when, losses, metrics, run_cli, trained

pytestmark = pytest.mark.slow

RUN = ["nano3", "pretrain", "train.steps=6", "train.micro_batch_size=1", "train.checkpoint_interval=3",
       "train.eval_interval=3", "model.num_layers=4",
       # the schedule the tolerance was measured with (the tiny variant's own is the pipe's, for learning)
       "train.global_batch_size=4", "optimizer.lr=3e-3", "optimizer.min_lr=3e-4", "optimizer.warmup_steps=4"]
TOLERANCE = 2e-6  # measured at most 9.5e-7 (see the module docstring)
LAYOUTS = {
    "dp2": ["train.nproc_per_node=2"],
    "tp2": ["train.tensor_parallel=2"],
    "pp2": ["train.pipeline_parallel=2", "train.nproc_per_node=2"],
    "tp2-pp2": ["train.tensor_parallel=2", "train.pipeline_parallel=2", "train.nproc_per_node=4"],
    "pp2-interleaved": ["train.pipeline_parallel=2", "train.virtual_pipeline_parallel=2", "train.nproc_per_node=2"],
    "dp2-distributed-optimizer": ["train.nproc_per_node=2", "train.use_distributed_optimizer=true"],
    "dp2-overlapped-reduce": ["train.nproc_per_node=2", "train.overlap_grad_reduce=true"],
    "recompute-full": ["train.recompute=full"],
    "recompute-selective": ["train.recompute=selective"],
}


@pytest.fixture(scope="module")
def work(prepared) -> Path:
    return prepared


def train(work: Path, name: str, *overrides: str) -> Path:
    """The run directory of a 6-step pretraining in its own output root."""
    return trained(work, name, *RUN, *overrides)


@pytest.fixture(scope="module")
def one_process(work) -> Path:
    return train(work, "one")


def test_the_learning_rate_is_the_schedule_of_the_loop(one_process):
    from nemotron.train.loop import learning_rate

    rows = metrics(one_process)
    optimizer = {"lr": 3.0e-3, "min_lr": 3.0e-4, "warmup_steps": 4}  # conf/optimizer/adamw.yaml
    assert [row["lr"] for row in rows] == pytest.approx([learning_rate(r["step"], optimizer, 6) for r in rows],
                                                        rel=1e-12, abs=0)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_gives_the_losses_of_one_process(work, one_process, layout):
    run_dir = train(work, layout, *LAYOUTS[layout])
    ours, reference = metrics(run_dir), metrics(one_process)
    assert [r["loss"] for r in ours] == pytest.approx([r["loss"] for r in reference], abs=TOLERANCE, rel=0)
    assert [r["val_loss"] for r in ours if "val_loss" in r] == pytest.approx(
        [r["val_loss"] for r in reference if "val_loss" in r], abs=TOLERANCE, rel=0)
    assert [r["grad_norm"] for r in ours] == pytest.approx([r["grad_norm"] for r in reference], rel=1e-4)


@pytest.mark.parametrize("layout", ["one", "pp2-interleaved", "dp2-distributed-optimizer"])
def test_a_run_killed_with_sigkill_resumes_bit_identically(work, layout):
    overrides = LAYOUTS.get(layout, [])
    reference = train(work, f"{layout}-reference", *overrides)
    out = work / f"{layout}-killed"
    kill_cli_when(*RUN, *overrides, f"train.output_root={out}", cwd=work, watch=out, pattern="checkpoints/latest")
    (run_dir,) = out.glob("*/*")
    assert not (run_dir / "result.json").exists(), "the kill should land mid-training"
    resumed = run_cli(*RUN, *overrides, f"train.output_root={out}", cwd=work, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout and "resharded" not in resumed.stdout
    assert losses(run_dir) == losses(reference)  # bitwise: the same floats


@pytest.mark.parametrize(("saved", "loaded"), [
    ("tp2-pp2", "one"),
    ("one", "tp2-pp2"),
    ("pp2-interleaved", "one"),
    ("dp2-distributed-optimizer", "tp2-distributed-optimizer"),
])
def test_a_run_continues_in_another_layout(work, one_process, saved, loaded):
    """The same command in another layout finds the run (the layout is not in its fingerprint)
    and continues it: model and optimizer state reshard through dist_checkpointing."""
    layouts = {**LAYOUTS, "one": [], "tp2-distributed-optimizer": ["train.tensor_parallel=2",
                                                                   "train.use_distributed_optimizer=true"]}
    out = work / f"{saved}-to-{loaded}"
    kill_cli_when(*RUN, *layouts[saved], f"train.output_root={out}", cwd=work, watch=out, pattern="checkpoints/latest")
    (run_dir,) = out.glob("*/*")
    assert not (run_dir / "result.json").exists(), "the kill should land mid-training"
    done = run_cli(*RUN, *layouts[loaded], f"train.output_root={out}", cwd=work, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resharded from" in done.stdout
    assert losses(run_dir) == pytest.approx(losses(one_process), abs=TOLERANCE, rel=0)


def test_the_optimizer_kind_must_match_the_checkpoint(work):
    out = work / "switch"
    kill_cli_when(*RUN, "train.nproc_per_node=2", "train.use_distributed_optimizer=true", f"train.output_root={out}",
                  cwd=work, watch=out, pattern="checkpoints/latest")
    done = run_cli(*RUN, "train.nproc_per_node=2", f"train.output_root={out}", cwd=work, timeout=600)
    assert done.returncode != 0
    assert "was written with train.use_distributed_optimizer=True; resume with the same setting" in done.stdout + done.stderr
