"""``nemotron <family> pretrain``: real Megatron-Core training on CPU through the command line.

Each training runs in its own processes (the stage launches them); every test here prepares
the tiny data once per test directory first.
"""

import json
import shutil
from pathlib import Path

import pytest

from helpers import REPO, kill_cli_when, losses, run_cli

pytestmark = pytest.mark.slow
SHORT = ["train.steps=12", "train.checkpoint_interval=6", "train.eval_interval=6", "train.eval_steps=1"]


def prep(work: Path) -> None:
    done = run_cli("nano3", "data", "prep", "pretrain", cwd=work)
    assert done.returncode == 0, done.stderr


def record(work: Path, name: str, version: int) -> dict:
    return json.loads((work / "artifacts" / name / "versions" / f"v{version}.json").read_text())


def test_pretrain_logs_a_model_with_pinned_data_lineage_checkpoint_metrics_and_plot(isolated):
    prep(isolated)
    done = run_cli("nano3", "pretrain", *SHORT, cwd=isolated, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    model = record(isolated, "nano3-pretrain-model-tiny", 1)
    assert model["type"] == "ModelArtifact" and model["inputs"] == ["art://nano3-pretrain-data-tiny:v1"]
    fields, meta = model["fields"], model["metadata"]
    assert fields["stage"] == "pretrain" and fields["step"] == 12 and fields["format"] == "megatron"
    assert fields["tokens_seen"] == 12 * 16 * 128 and 0 < fields["final_loss"] < 7.7
    checkpoint = Path(model["path"])
    assert checkpoint.name == "iter_0000012" and (checkpoint / "model" / "metadata.json").is_file()
    assert json.loads((checkpoint / "trainer.json").read_text())["step"] == 12
    run_dir = Path(meta["run_dir"])
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert all({"loss", "lr", "tokens_per_s", "step_time_s"} <= r.keys() for r in rows)
    assert "val_loss" in rows[5] and "val_loss" in rows[11]
    assert losses(run_dir)[-1] < losses(run_dir)[0]
    assert Path(meta["loss_plot"]).read_bytes()[:4] == b"\x89PNG"
    assert meta["config"]["optimizer"]["lr"] == 1e-2 and meta["config"]["run"]["data"].endswith(":latest")


def test_killed_run_resumes_from_the_last_complete_checkpoint_bit_for_bit(isolated, tmp_path):
    prep(isolated)
    args = ["nano3", "pretrain", "train.steps=40", "train.checkpoint_interval=10", "train.eval_interval=0"]
    reference = run_cli(*args, f"train.output_root={tmp_path / 'reference'}", cwd=isolated, timeout=600)
    assert reference.returncode == 0, reference.stderr[-3000:]

    out = tmp_path / "killed"
    kill_cli_when(*args, f"train.output_root={out}", cwd=isolated, watch=out, pattern="checkpoints/latest")
    (run_dir,) = out.glob("*/*")
    assert not (run_dir / "result.json").exists(), "the kill should land mid-training"
    killed_at = len(losses(run_dir))

    resumed = run_cli(*args, f"train.output_root={out}", cwd=isolated, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout
    (reference_dir,) = (tmp_path / "reference").glob("*/*")
    assert losses(run_dir) == losses(reference_dir)  # bitwise: same floats
    assert killed_at < 40


def test_tensor_parallel_2_over_gloo_matches_tensor_parallel_1(isolated, tmp_path):
    prep(isolated)
    args = ["nano3", "pretrain", "train.steps=8", "train.checkpoint_interval=0", "train.eval_interval=0"]
    one = run_cli(*args, f"train.output_root={tmp_path / 'tp1'}", cwd=isolated, timeout=600)
    two = run_cli(*args, "train.tensor_parallel=2", f"train.output_root={tmp_path / 'tp2'}", cwd=isolated, timeout=600)
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    (tp1,), (tp2,) = (tmp_path / "tp1").glob("*/*"), (tmp_path / "tp2").glob("*/*")
    assert losses(tp1) == pytest.approx(losses(tp2), rel=1e-4, abs=1e-4)
    assert losses(tp1)[-1] < losses(tp1)[0]
    layout = json.loads((tp2 / "checkpoints" / "iter_0000008" / "trainer.json").read_text())
    assert (layout["tp_size"], layout["world_size"]) == (2, 2)


def test_multirun_logs_one_model_version_per_learning_rate(isolated):
    prep(isolated)
    done = run_cli("nano3", "pretrain", "-m", "optimizer.lr=1e-3,3e-3", "train.steps=4",
                   "train.checkpoint_interval=0", "train.eval_interval=0", cwd=isolated, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = (record(isolated, "nano3-pretrain-model-tiny", v) for v in (1, 2))
    assert {first["metadata"]["config"]["optimizer"]["lr"], second["metadata"]["config"]["optimizer"]["lr"]} == {1e-3, 3e-3}
    assert first["path"] != second["path"]


@pytest.mark.parametrize("args,fragment", [
    (["run.data=nope:v1"], "no artifact named 'nope'"),
    (["run.data=nano3-pretrain-model-tiny:latest"], "no artifact named 'nano3-pretrain-model-tiny'"),
    (["model=nano3"], "model 'nano3' runs on GPUs only"),
    (["train.nproc_per_node=3", "train.tensor_parallel=2"], "not a multiple of train.tensor_parallel=2"),
    (["model.activation=quick_gelu"], "model.activation='quick_gelu' (supported: swiglu, silu, gelu"),
    (["train.expert_parallel=2", "train.nproc_per_node=2"], "train.expert_parallel=2 needs a MoE model"),
    (["+model.mtp_num_layers=1"], "multi-token prediction layers"),
])
def test_bad_input_stops_before_training(isolated, args, fragment):
    prep(isolated)
    done = run_cli("nano3", "pretrain", *args, cwd=isolated)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and fragment in lines[-2], done.stderr[-2000:]
    assert not (isolated / "runs" / "nano3-pretrain-model-tiny").exists()


def test_a_damaged_or_missing_shard_is_one_line_before_any_training_process(isolated, tmp_path):
    prep(isolated)
    blend = json.loads(Path(record(isolated, "nano3-pretrain-data-tiny", 1)["fields"]["blend_path"]).read_text())
    shard = tmp_path / "shard"
    for suffix in (".bin", ".idx"):
        shutil.copyfile(blend["train"][1] + suffix, f"{shard}{suffix}")
    blend["train"][1] = str(shard)
    (tmp_path / "blend.json").write_text(json.dumps(blend))
    # Imported: the blend's shards lie outside the artifact's directory, as a user's shards do.
    done = run_cli("nano3", "data", "import", "pretrain", str(tmp_path / "blend.json"),
                   "--tokenizer", str(REPO / "nemotron" / "data" / "tokenizers" / "tiny-bpe"), cwd=isolated)
    assert done.returncode == 0, done.stderr
    idx = Path(f"{shard}.idx")
    for damage, fragment in ((lambda: idx.write_bytes(idx.read_bytes()[:30]), "not a Megatron index"),
                             (idx.unlink, "shard file missing")):
        damage()
        done = run_cli("nano3", "pretrain", "run.data=nano3-pretrain-data-imported:latest", cwd=isolated)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 2, done.stderr[-2000:]  # no traceback from a training process
        assert lines[0].startswith(f"error: {idx}: {fragment}") and "a train shard of" in lines[0], done.stderr
    assert not (isolated / "runs" / "nano3-pretrain-model-tiny").exists()


def test_data_of_the_wrong_type_is_refused(isolated, tmp_path):
    from nemo_runspec.artifacts import log_artifact, setup_artifact_tracking
    from nemotron.kit import ModelArtifact

    tracking = setup_artifact_tracking({"root": str(isolated / "artifacts")})
    log_artifact(ModelArtifact(path=tmp_path, stage="sft", step=1), tracking, name="some-model")
    done = run_cli("nano3", "pretrain", "run.data=some-model:v1", cwd=isolated)
    assert done.returncode == 1 and "is a ModelArtifact, pretraining needs a PretrainBlendsArtifact" in done.stderr


def test_model_params_prints_counts_from_the_config(isolated):
    tiny = run_cli("nano3", "model", "params", cwd=isolated)
    assert tiny.returncode == 0 and "354,624" in tiny.stdout
    nano3 = run_cli("nano3", "model", "params", "model=nano3", cwd=isolated)
    assert "31,577,937,344" in nano3.stdout and "active per token" in nano3.stdout
    wider = run_cli("nano3", "model", "params", "model.hidden_size=128", "--vocab-size", "4096", cwd=isolated)
    assert "vocabulary 4096" in wider.stdout and "354,624" not in wider.stdout


@pytest.mark.parametrize("flag", [["--dry-run"], ["--cfg", "job"]])
@pytest.mark.parametrize("stage", ["pretrain", "sft"])
def test_a_recipe_prints_before_its_data_exists_with_the_artifact_references_as_written(isolated, flag, stage):
    done = run_cli("nano3", stage, *flag, "train.steps=3", cwd=isolated)
    assert done.returncode == 0, done.stderr
    assert "data:\n" in done.stdout and "${art:data," in done.stdout  # left as written
    assert "steps: 3" in done.stdout  # everything else resolved
    (note,) = done.stderr.strip().splitlines()
    assert note.startswith("note: ") and f"no artifact named 'nano3-{stage}-data-tiny'" in note
    assert not (isolated / "runs").exists() and not (isolated / "artifacts").exists()
