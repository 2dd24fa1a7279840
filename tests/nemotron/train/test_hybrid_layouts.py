"""Nemotron-H (hybrid Mamba-2 + attention + MoE, ``variant=tiny_hybrid``) and a MoE GPT on
Megatron-Core's engine in the layouts this CPU can run: each gives the losses, aux losses and
expert loads of one process for the same global batch, resumes bit for bit after kill -9, and
its checkpoints load into another layout.

Measured (model nano3_tiny, 6 steps, micro-batch 1, global batch 4): the largest loss
difference against one process is 4.8e-7 (TP2 with sequence parallelism, EP2, PP2, DP2);
aux losses agree to 1e-6; resumes are bit-identical.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import kill_cli_when, metrics, run_cli, trained

pytestmark = pytest.mark.slow

HYBRID = ["nano3", "pretrain", "variant=tiny_hybrid", "train.steps=6", "train.micro_batch_size=1",
          "train.checkpoint_interval=3", "train.eval_interval=3"]
MOE_GPT = ["nano3", "pretrain", "model=tiny_moe", "train.steps=6", "train.micro_batch_size=1",
           "train.checkpoint_interval=3", "train.eval_interval=0"]
TOLERANCE = 2e-6  # measured at most 4.8e-7 (see the module docstring)
LAYOUTS = {
    "tp2-sp": ["train.tensor_parallel=2", "train.sequence_parallel=true"],  # Megatron: MoE with TP needs SP
    "ep2": ["train.expert_parallel=2", "train.nproc_per_node=2"],
    "pp2": ["train.pipeline_parallel=2", "train.nproc_per_node=2"],
    "dp2": ["train.nproc_per_node=2"],
}


@pytest.fixture(scope="module")
def work(prepared) -> Path:
    return prepared


def train(work: Path, run: list[str], name: str, *overrides: str) -> Path:
    return trained(work, name, *run, *overrides)


def column(rows: list[dict], key: str) -> list:
    return [row[key] for row in rows if key in row]


@pytest.fixture(scope="module")
def one_process(work) -> Path:
    return train(work, HYBRID, "hybrid-one")


def test_a_hybrid_step_records_its_aux_loss_and_each_experts_share(one_process):
    rows = metrics(one_process)
    assert all(0.5 < row["moe_seq_load_balancing_loss"] < 2.0 for row in rows)  # 1.0: balanced
    loads = rows[0]["expert_load"]
    assert len(loads) == 2 and all(len(layer) == 8 and sum(layer) == pytest.approx(1, abs=1e-3) for layer in loads)
    assert all(row["expert_load_max"] >= 1.0 for row in rows)
    assert rows[-1]["loss"] < rows[0]["loss"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_hybrid_layout_gives_the_losses_of_one_process(work, one_process, layout):
    run_dir = train(work, HYBRID, f"hybrid-{layout}", *LAYOUTS[layout])
    ours, reference = metrics(run_dir), metrics(one_process)
    for key in ("loss", "val_loss", "moe_seq_load_balancing_loss"):
        assert column(ours, key) == pytest.approx(column(reference, key), abs=TOLERANCE, rel=0), key
    assert column(ours, "expert_load") == column(reference, "expert_load")  # the same routing decisions


@pytest.mark.parametrize("layout", ["one", "ep2"])
def test_a_hybrid_run_killed_with_sigkill_resumes_bit_identically(work, one_process, layout):
    overrides = LAYOUTS.get(layout, [])
    reference = one_process if layout == "one" else train(work, HYBRID, f"hybrid-{layout}-reference", *overrides)
    out = work / f"hybrid-{layout}-killed"
    kill_cli_when(*HYBRID, *overrides, f"train.output_root={out}", cwd=work, watch=out, pattern="checkpoints/latest")
    (run_dir,) = out.glob("*/*")
    assert not (run_dir / "result.json").exists(), "the kill should land mid-training"
    resumed = run_cli(*HYBRID, *overrides, f"train.output_root={out}", cwd=work, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout
    assert column(metrics(run_dir), "loss") == column(metrics(reference), "loss")  # bitwise


def test_a_hybrid_run_continues_resharded_from_tp2_to_one_process(work, one_process):
    out = work / "hybrid-tp2-to-one"
    kill_cli_when(*HYBRID, *LAYOUTS["tp2-sp"], f"train.output_root={out}", cwd=work, watch=out,
                  pattern="checkpoints/latest")
    (run_dir,) = out.glob("*/*")
    assert not (run_dir / "result.json").exists(), "the kill should land mid-training"
    done = run_cli(*HYBRID, f"train.output_root={out}", cwd=work, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resharded from" in done.stdout
    assert column(metrics(run_dir), "loss") == pytest.approx(column(metrics(one_process), "loss"), abs=TOLERANCE, rel=0)


def test_a_gpt_with_experts_trains_and_expert_parallel_2_gives_its_losses(work):
    one = metrics(train(work, MOE_GPT, "moe-gpt-one"))
    ep2 = metrics(train(work, MOE_GPT, "moe-gpt-ep2", *LAYOUTS["ep2"]))
    assert column(ep2, "loss") == pytest.approx(column(one, "loss"), abs=TOLERANCE, rel=0)
    assert column(ep2, "moe_load_balancing_loss") == pytest.approx(column(one, "moe_load_balancing_loss"), abs=1e-6)
    assert len(one[0]["expert_load"]) == 2  # every layer of the 2-layer GPT is a MoE layer
