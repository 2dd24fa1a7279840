"""``nemotron <family> eval``: a model's held-out loss as an EvalResultArtifact, pinned to the
model and the data, readable through ``${art:...}`` and shown among the model's descendants."""

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
    (["eval.split=train"], "eval.split must be one of 'valid', 'test'"),
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
