"""``nemotron <family> pipe``: the six stages and the four evaluations end to end on tiny configs,
lineage checked, the table and the report picture printed."""

import json
from pathlib import Path

import pytest

from helpers import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]  # whole pipes, evaluations included
FAST = ["pretrain:train.steps=6", "pretrain:train.checkpoint_interval=0", "sft:train.steps=4",
        "sft:train.checkpoint_interval=0", "rl:rl.steps=2"]
NAMES = ["nano3-pretrain-data-tiny", "nano3-pretrain-model-tiny", "nano3-sft-data-tiny", "nano3-sft-model-tiny",
         "nano3-rl-data-tiny", "nano3-rl-model-tiny"]


def record(work: Path, name: str, version: int = 1) -> dict:
    return json.loads((work / "artifacts" / name / "versions" / f"v{version}.json").read_text())


def test_pipe_runs_its_steps_and_evaluations_with_pinned_lineage_and_a_rerun_skips_them(default_pipe):
    work, done = default_pipe  # the default settings' pipe, which the learning test reads too
    records = {name: record(work, name) for name in NAMES}
    assert [records[n]["type"] for n in NAMES] == ["PretrainBlendsArtifact", "ModelArtifact", "SFTDataArtifact",
                                                   "ModelArtifact", "SplitJsonlDataArtifact", "ModelArtifact"]
    assert [records[n]["fields"]["stage"] for n in NAMES[1::2]] == ["pretrain", "sft", "rl"]
    uri = lambda name: f"art://{name}:v1"  # noqa: E731
    assert records["nano3-pretrain-model-tiny"]["inputs"] == [uri("nano3-pretrain-data-tiny")]
    assert records["nano3-sft-model-tiny"]["inputs"] == [uri("nano3-pretrain-model-tiny"), uri("nano3-sft-data-tiny")]
    assert records["nano3-rl-model-tiny"]["inputs"] == [uri("nano3-sft-model-tiny"), uri("nano3-rl-data-tiny")]
    assert any(i.endswith("samples/pretrain/python_docs.jsonl") for i in records["nano3-pretrain-data-tiny"]["inputs"])
    assert "nano3-pretrain-data-tiny:v1" in done.stdout.split("made from")[-1]  # the printed lineage tree
    evaluations = {name: record(work, f"nano3-eval-{name}-tiny") for name in ("initial", "pretrain", "sft", "rl")}
    assert [e["inputs"] for e in evaluations.values()] == [
        [uri("nano3-pretrain-model-tiny"), uri("nano3-pretrain-data-tiny")],
        [uri("nano3-pretrain-model-tiny"), uri("nano3-pretrain-data-tiny")],
        [uri("nano3-sft-model-tiny"), uri("nano3-rl-data-tiny")], [uri("nano3-rl-model-tiny"), uri("nano3-rl-data-tiny")]]
    assert evaluations["initial"]["fields"]["weights"] == "initial"
    assert evaluations["pretrain"]["fields"]["loss"] < evaluations["initial"]["fields"]["loss"]
    assert "evaluations along its chain" in done.stdout
    assert "report: reports/nano3-rl-model-tiny-v1/report.png" in done.stdout
    assert (work / "reports" / "nano3-rl-model-tiny-v1" / "report.html").is_file()

    mermaid = run_cli("artifact", "lineage", "nano3-rl-model-tiny", "--format", "mermaid", cwd=work).stdout
    assert mermaid.count("subgraph ") == 3 and mermaid.count("<br/>") == 6
    for stage in ("Stage 0: Pretraining", "Stage 1: SFT", "Stage 2: RL"):
        assert stage in mermaid
    node = {line.split('["')[0].strip(): line for line in mermaid.splitlines() if '["' in line}
    ids = {name: next(k for k, v in node.items() if f"{name}:v1" in v) for name in NAMES}
    for src, dst in [("nano3-pretrain-data-tiny", "nano3-pretrain-model-tiny"),
                     ("nano3-pretrain-model-tiny", "nano3-sft-model-tiny"),
                     ("nano3-sft-model-tiny", "nano3-rl-model-tiny")]:
        assert f"{ids[src]} --> {ids[dst]}" in mermaid

    # A pretraining of the same name beside the pipe becomes :latest; the rerun still reads the
    # versions its own steps logged, so nothing runs again and nothing gets a second parent.
    beside = run_cli("nano3", "pretrain", "train.steps=2", "train.checkpoint_interval=0", "train.eval_interval=0",
                     cwd=work, timeout=600)
    assert "logged nano3-pretrain-model-tiny:v2" in beside.stdout, beside.stderr[-2000:]
    again = run_cli("nano3", "pipe", cwd=work, timeout=600)
    assert again.returncode == 0 and again.stdout.count("nothing to do") == 10, again.stderr[-2000:]
    assert all(not (work / "artifacts" / n / "versions" / "v2.json").exists() for n in NAMES if "pretrain-model" not in n)

    failed = run_cli("nano3", "pipe", "sft:model.hidden_size=128", cwd=work, timeout=600)
    lines = failed.stderr.strip().splitlines()
    assert failed.returncode == 1 and lines[-2].startswith("error: step 6/10 sft failed: parent"), failed.stderr[-2000:]


def test_pipe_verify_inputs_digests_every_input_file_before_a_step(default_pipe):
    """A shard changed in place with its size and mtime kept passes the quick check (sizes and
    touched files); ``pipe --verify-inputs`` digests every file and the pretrain step refuses it."""
    import os

    work, _ = default_pipe
    data = record(work, "nano3-pretrain-data-tiny")
    shard = Path(data["path"]) / next(e["path"] for e in data["contents"]["files"] if e["path"].endswith(".bin"))
    kept, stat = shard.read_bytes(), shard.stat()
    changed = bytearray(kept)
    changed[len(changed) // 2] ^= 0xFF
    shard.write_bytes(bytes(changed))
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    try:
        quick = run_cli("nano3", "pipe", "--to", "pretrain", cwd=work, timeout=600)
        full = run_cli("nano3", "pipe", "--to", "pretrain", "--verify-inputs", cwd=work, timeout=600)
    finally:
        shard.write_bytes(kept)
        os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert quick.returncode == 0 and quick.stdout.count("nothing to do") == 2, quick.stderr[-2000:]
    assert full.returncode == 1, full.stdout[-2000:]
    assert "step 2/2 pretrain failed: art://nano3-pretrain-data-tiny:v1 changed since it was published" in full.stderr


def test_the_tiny_hybrid_pipe_trains_nemotron_h_through_every_stage_on_the_tiny_data(isolated):
    """variant=tiny_hybrid: pretraining and SFT of nano3_tiny (Mamba-2 + attention + MoE) on
    Megatron-Core, the SFT model exported to Hugging Face NemotronH for GRPO; the data preps
    are the tiny pipeline's (one artifact each, shared)."""
    done = run_cli("nano3", "pipe", "variant=tiny_hybrid", *FAST, cwd=isolated, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    pretrained = record(isolated, "nano3-pretrain-model-tiny_hybrid")
    assert pretrained["metadata"]["architecture"]["hybrid_override_pattern"] == "MEM*E-"
    assert pretrained["inputs"] == ["art://nano3-pretrain-data-tiny:v1"]
    (metrics,) = Path(pretrained["path"]).parents[1].glob("metrics.jsonl")
    first = json.loads(metrics.read_text().splitlines()[0])
    assert "moe_seq_load_balancing_loss" in first and len(first["expert_load"]) == 2
    tuned = record(isolated, "nano3-sft-model-tiny_hybrid")
    assert tuned["inputs"] == ["art://nano3-pretrain-model-tiny_hybrid:v1", "art://nano3-sft-data-tiny:v1"]
    rl = record(isolated, "nano3-rl-model-tiny_hybrid")
    assert rl["inputs"] == ["art://nano3-sft-model-tiny_hybrid:v1", "art://nano3-rl-data-tiny:v1"]
    config = json.loads((Path(rl["path"]) / "config.json").read_text())
    assert config["model_type"] == "nemotron_h"
    assert not (isolated / "artifacts" / "nano3-pretrain-data-tiny_hybrid").exists()


def test_overrides_for_an_unknown_step_are_refused(isolated):
    done = run_cli("nano3", "pipe", "distill:train.steps=1", cwd=isolated)
    assert done.returncode == 1 and "names no step" in done.stderr
