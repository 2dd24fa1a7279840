"""``nemotron <family> eval``: a model's held-out loss, or a chat model's accuracy and format
rate on RL prompts, as an EvalResultArtifact pinned to the model and the data, readable through
``${art:...}`` and shown among the model's descendants."""

import json
import math
from pathlib import Path

import pytest

from helpers import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("eval")
    for args in (["data", "prep", "pretrain"], ["pretrain", "train.steps=8", "train.checkpoint_interval=0"]):
        done = run_cli("nano3", *args, cwd=work, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    return work


def record(work: Path, name: str, version: int) -> dict:
    return json.loads((work / "artifacts" / name / "versions" / f"v{version}.json").read_text())


def test_held_out_loss_is_logged_pinned_readable_and_below_the_untrained_models(work):
    trained = run_cli("nano3", "eval", cwd=work, timeout=600)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "logged nano3-eval-tiny:v1: valid loss" in trained.stdout
    result = record(work, "nano3-eval-tiny", 1)
    assert result["type"] == "EvalResultArtifact"
    assert result["inputs"] == ["art://nano3-pretrain-model-tiny:v1", "art://nano3-pretrain-data-tiny:v1"]
    fields = result["fields"]
    assert (fields["evaluation"], fields["split"], fields["weights"]) == ("loss", "valid", "trained")
    assert fields["perplexity"] == pytest.approx(math.exp(fields["loss"]))
    assert fields["sequences"] == 64 and fields["tokens"] > 0

    initial = run_cli("nano3", "eval", "eval.weights=initial", cwd=work, timeout=600)
    assert initial.returncode == 0, initial.stderr[-3000:]
    untrained = record(work, "nano3-eval-tiny", 2)["fields"]["loss"]
    assert untrained == pytest.approx(math.log(2048), abs=0.1)  # an untrained model guesses uniformly
    assert fields["loss"] < untrained - 0.2  # measured 0.35 after 8 steps

    again = run_cli("nano3", "eval", cwd=work, timeout=600)
    assert again.returncode == 0 and "already holds this evaluation" in again.stdout
    descendants = run_cli("artifact", "lineage", "nano3-pretrain-model-tiny", "--descendants", cwd=work)
    assert descendants.stdout.count("EvalResultArtifact") == 2
    shown = run_cli("nano3", "eval", "--cfg", "job", "run.name=${art:result,loss}", "+run.result=nano3-eval-tiny:v1",
                    cwd=work)
    assert f"name: '{fields['loss']}'" in shown.stdout or f"name: {fields['loss']}" in shown.stdout, shown.stdout


@pytest.mark.parametrize(("args", "fragment"), [
    (["eval.split=train"], "eval.split must be one of valid, test for eval=loss, got 'train'"),
    (["eval=accuracy", "eval.split=valid"], "eval.split must be one of val, test for eval=accuracy, got 'valid'"),
    (["eval=accuracy", "run.data=nano3-pretrain-data-tiny:latest"],
     "is a PretrainBlendsArtifact, evaluation needs a SplitJsonlDataArtifact"),
    (["run.model=nano3-pretrain-data-tiny:latest"], "is a PretrainBlendsArtifact, evaluation needs a ModelArtifact"),
    (["run.data=nano3-pretrain-model-tiny:latest"], "is a ModelArtifact, evaluation needs a PretrainBlendsArtifact"),
    (["run.model=nope:v1"], "no artifact named 'nope'"),
])
def test_bad_input_is_one_line_and_logs_nothing(work, args, fragment):
    done = run_cli("nano3", "eval", "run.name=bad-eval", *args, cwd=work, timeout=300)
    assert done.returncode == 1, done.stdout[-2000:]
    assert fragment in done.stderr.strip().splitlines()[-2], done.stderr[-2000:]
    assert not (work / "artifacts" / "bad-eval").exists()


def test_a_split_without_sequences_is_refused_by_name(work):
    prep = run_cli("nano3", "data", "prep", "pretrain", "run.name=no-test-data", "data_prep.splits={train: 0.95, valid: 0.05, test: 0.0}",
                   cwd=work, timeout=600)
    assert prep.returncode == 0, prep.stderr[-3000:]
    done = run_cli("nano3", "eval", "run.name=bad-eval", "run.data=no-test-data:latest", "eval.split=test", cwd=work,
                   timeout=300)
    assert done.returncode == 1
    assert "no-test-data:v1 has no 'test' sequences (splits with data: train, valid)" in done.stderr


@pytest.fixture(scope="module")
def chat(work) -> Path:
    """An SFT model (a Megatron checkpoint) of the pretrained one, and the RL prompts."""
    for args in (["data", "prep", "sft"], ["sft", "train.steps=60", "train.checkpoint_interval=0"],
                 ["data", "prep", "rl"]):
        done = run_cli("nano3", *args, cwd=work, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    return work


def test_accuracy_of_a_megatron_chat_model_is_logged_with_one_line_per_prompt(chat):
    done = run_cli("nano3", "eval", "eval=accuracy", "run.model=nano3-sft-model-tiny:latest", "run.name=acc",
                   cwd=chat, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "logged acc:v1: test accuracy" in done.stdout and "pass@4" in done.stdout
    result = record(chat, "acc", 1)
    assert result["inputs"] == ["art://nano3-sft-model-tiny:v1", "art://nano3-rl-data-tiny:v1"]
    fields = result["fields"]
    assert (fields["evaluation"], fields["split"], fields["prompts"], fields["samples"]) == ("accuracy", "test", 60, 4)
    lines = [json.loads(line) for line in Path(result["metadata"]["completions"]).read_text().splitlines()]
    assert len(lines) == 60 and all(len(line["samples"]) == 4 for line in lines)
    assert fields["accuracy"] == pytest.approx(sum(line["correct"] for line in lines) / 60)
    assert fields["format_rate"] == pytest.approx(sum(line["ended_turn"] for line in lines) / 60)
    assert fields["rewards"]["math_verify"] == pytest.approx(fields["accuracy"])
    assert fields["format_rate"] > 0.5  # 60 SFT steps already teach it to end its turn
    assert 0.0 <= fields["sampled_accuracy"] <= fields["pass_at_k"] <= 1.0
    first = lines[0]
    assert set(first) >= {"id", "prompt", "expected_answer", "completion", "ended_turn", "rewards", "correct"}
    assert (Path(result["path"]) / "hf" / "config.json").is_file()  # the export it generated with


def test_an_imported_hugging_face_model_scores_as_its_megatron_original(chat, tmp_path):
    exported = run_cli("nano3", "model", "export", "hf", "nano3-sft-model-tiny:latest", str(tmp_path / "hf"),
                       cwd=chat, timeout=600)
    assert exported.returncode == 0, exported.stderr[-3000:]
    imported = run_cli("nano3", "model", "import", "sft", str(tmp_path / "hf"), "--name", "sft-hf", "--step", "60",
                       cwd=chat, timeout=600)
    assert imported.returncode == 0, imported.stderr[-3000:]
    for model, name in (("sft-hf:latest", "acc-hf"), ("nano3-sft-model-tiny:latest", "acc-megatron")):
        done = run_cli("nano3", "eval", "eval=accuracy", "eval.samples=0", f"run.model={model}", f"run.name={name}",
                       cwd=chat, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    hf, megatron = record(chat, "acc-hf", 1)["fields"], record(chat, "acc-megatron", 1)["fields"]
    assert (hf["accuracy"], hf["format_rate"]) == (megatron["accuracy"], megatron["format_rate"])
    assert hf["pass_at_k"] is None


def test_a_split_without_prompts_is_refused_by_name(chat):
    prep = run_cli("nano3", "data", "prep", "rl", "run.name=no-val", "data_prep.splits={val: 0, test: 20}", cwd=chat,
                   timeout=600)
    assert prep.returncode == 0, prep.stderr[-3000:]
    done = run_cli("nano3", "eval", "eval=accuracy", "eval.split=val", "run.model=nano3-sft-model-tiny:latest",
                   "run.data=no-val:latest", "run.name=bad-eval", cwd=chat, timeout=300)
    assert done.returncode == 1
    assert "no-val:v1 has no 'val' prompts (splits with prompts: train, test)" in done.stderr
    assert not (chat / "artifacts" / "bad-eval").exists()
