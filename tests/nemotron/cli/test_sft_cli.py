"""``nemotron <family> sft``: fine-tuning the pretrained tiny model on packed conversations."""

import json
from pathlib import Path

import pytest

from helpers import kill_cli_when, run_cli, run_python

pytestmark = pytest.mark.slow
SHORT = ["train.steps=6", "train.checkpoint_interval=3", "train.eval_interval=3"]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A directory holding pretrain data, a 12-step pretrained model and SFT data."""
    work = tmp_path_factory.mktemp("sft")
    for args in (["data", "prep", "pretrain"], ["pretrain", "train.steps=12", "train.checkpoint_interval=0"],
                 ["data", "prep", "sft"]):
        done = run_cli("nano3", *args, cwd=work, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    return work


def record(work: Path, name: str, version: int) -> dict:
    return json.loads((work / "artifacts" / name / "versions" / f"v{version}.json").read_text())


def latest(work: Path, name: str) -> dict:
    versions = sorted(int(p.stem[1:]) for p in (work / "artifacts" / name / "versions").glob("v*.json"))
    return record(work, name, versions[-1])


def test_sft_logs_a_model_pinned_to_its_parent_and_data_and_starts_from_the_parent(work, tmp_path):
    done = run_cli("nano3", "sft", *SHORT, f"train.output_root={tmp_path}", cwd=work, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    model = latest(work, "nano3-sft-model-tiny")
    parent, data = latest(work, "nano3-pretrain-model-tiny"), latest(work, "nano3-sft-data-tiny")
    assert model["inputs"] == [f"art://{parent['name']}:v{parent['version']}", f"art://{data['name']}:v{data['version']}"]
    fields = model["fields"]
    assert fields["stage"] == "sft" and fields["step"] == 6 and fields["parent_model"] == model["inputs"][0]
    assert model["metadata"]["config"]["train"]["seq_length"] == data["fields"]["pack_size"] == 128
    run_dir = Path(model["metadata"]["run_dir"])
    first_loss = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])["loss"]

    # The loss at step 1 is the parent's loss on that batch: the parent's weights were loaded.
    probe = run_python(f"""
import json, os, random, torch
os.environ.update(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(random.randint(20000, 40000)))
from nemotron.train import checkpoint, distributed
from nemotron.train.models import build_model
from nemotron.train.launch import sft_batches
from nemotron.train.engine import model_loss
job = json.load(open({str(run_dir / "job.json")!r}))
topo = distributed.initialize(1, int(job["train"]["seed"]), cuda=False)
from nemotron.schemas.job import TrainingJob
batch = sft_batches(TrainingJob.model_validate(job), topo)("train", 0, int(job["train"]["micro_batch_size"]),
                                                           torch.device("cpu"))
model = build_model(job["model"], int(job["data"]["vocab_size"]), 1, cuda=False, bf16=False)
with torch.no_grad():
    random_init = float(model_loss(model, batch))
checkpoint.load_model(checkpoint.Path(job["init_checkpoint"]), model)
with torch.no_grad():
    print(float(model_loss(model, batch)), random_init)
""", timeout=240)
    assert probe.returncode == 0, probe.stderr[-3000:]
    parent_loss, random_loss = map(float, probe.stdout.split())
    assert first_loss == pytest.approx(parent_loss, abs=1e-5)
    assert abs(random_loss - parent_loss) > 0.1


def test_killed_sft_resumes_bit_for_bit(work, tmp_path):
    args = ["nano3", "sft", "train.steps=30", "train.checkpoint_interval=10", "train.eval_interval=0"]
    reference = run_cli(*args, f"train.output_root={tmp_path / 'ref'}", cwd=work, timeout=600)
    assert reference.returncode == 0, reference.stderr[-3000:]
    out = tmp_path / "killed"
    kill_cli_when(*args, f"train.output_root={out}", cwd=work, watch=out, pattern="checkpoints/latest")
    (run_dir,) = out.glob("*/*")
    assert not (run_dir / "result.json").exists(), "the kill should land mid-training"
    resumed = run_cli(*args, f"train.output_root={out}", cwd=work, timeout=600)
    assert resumed.returncode == 0 and "resuming from" in resumed.stdout, resumed.stderr[-3000:]
    (ref_dir,) = (tmp_path / "ref").glob("*/*")
    losses = lambda d: [json.loads(line)["loss"] for line in (d / "metrics.jsonl").read_text().splitlines()]
    assert losses(run_dir) == losses(ref_dir) and len(losses(run_dir)) == 30


@pytest.mark.parametrize("args,fragment", [
    (["model.hidden_size=128"], "differs from the model config: hidden_size=64 (config: 128)"),
    (["run.data=nano3-pretrain-data-tiny:latest"], "is a PretrainBlendsArtifact, SFT needs a SFTDataArtifact"),
    (["run.model=nano3-sft-data-tiny:latest"], "is a SFTDataArtifact, SFT needs a ModelArtifact"),
    (["model.seq_length=64"], "packs 128 tokens, more than the model's seq_length 64"),
])
def test_bad_inputs_stop_before_training(work, args, fragment):
    done = run_cli("nano3", "sft", *args, cwd=work)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and fragment in lines[-2], done.stderr[-2000:]


def test_an_incomplete_parent_checkpoint_is_refused(work, tmp_path):
    import shutil

    parent = Path(latest(work, "nano3-pretrain-model-tiny")["path"])
    broken = tmp_path / "broken"
    shutil.copytree(parent, broken)
    (broken / "trainer.json").unlink()
    from nemo_runspec.artifacts import log_artifact, setup_artifact_tracking
    from nemotron.kit import ModelArtifact

    tracking = setup_artifact_tracking({"root": str(work / "artifacts")})
    source = tracking.resolve("nano3-pretrain-model-tiny:latest")
    log_artifact(ModelArtifact(path=broken, stage="pretrain", step=12, metadata=source.metadata), tracking,
                 name="broken-parent")
    done = run_cli("nano3", "sft", "run.model=broken-parent:latest", cwd=work)
    assert done.returncode == 1 and "is incomplete or not a Megatron checkpoint (missing trainer.json)" in done.stderr
