"""``nemotron <family> rl``: GRPO with TRL on CPU from the SFT model, through the command line."""

import json
from pathlib import Path

import pytest

from helpers import run_cli, run_python

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Pretrain data, a pretrained model, SFT data, an SFT model and RL data."""
    work = tmp_path_factory.mktemp("rl")
    for args in (["data", "prep", "pretrain"], ["pretrain", "train.steps=6", "train.checkpoint_interval=0"],
                 ["data", "prep", "sft"], ["sft", "train.steps=4", "train.checkpoint_interval=0"],
                 ["data", "prep", "rl"]):
        done = run_cli("nano3", *args, cwd=work, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    return work


def latest(work: Path, name: str) -> dict:
    versions = sorted(int(p.stem[1:]) for p in (work / "artifacts" / name / "versions").glob("v*.json"))
    return json.loads((work / "artifacts" / name / "versions" / f"v{versions[-1]}.json").read_text())


def test_grpo_logs_an_hf_policy_pinned_to_the_sft_model_and_data_with_rewards_per_step(work):
    done = run_cli("nano3", "rl", "rl.steps=2", cwd=work, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    model = latest(work, "nano3-rl-model-tiny")
    sft, data = latest(work, "nano3-sft-model-tiny"), latest(work, "nano3-rl-data-tiny")
    assert model["inputs"] == [f"art://{sft['name']}:v{sft['version']}", f"art://{data['name']}:v{data['version']}"]
    fields = model["fields"]
    assert (fields["stage"], fields["format"], fields["step"]) == ("rl", "hf", 2)
    assert fields["parent_model"] == model["inputs"][0]
    run_dir = Path(model["metadata"]["run_dir"])
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all({"reward", "kl", "reward/math_verify", "reward/format"} <= r.keys() for r in rows)
    assert Path(model["metadata"]["reward_plot"]).read_bytes()[:4] == b"\x89PNG"
    policy = Path(model["path"])
    assert not list(policy.glob("*.bin")) and json.loads((policy / "training_args.json").read_text())["max_steps"] == 2
    loaded = run_python(f"""
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained({model['path']!r})
tokenizer = AutoTokenizer.from_pretrained({model['path']!r})
ids = tokenizer.apply_chat_template([{{"role": "user", "content": "What is 2 plus 2?"}}], add_generation_prompt=True, return_tensors="pt")
print(model.generate(ids if not hasattr(ids, "input_ids") else ids.input_ids, max_new_tokens=4, do_sample=False).shape[1] > 0)
""", timeout=300)
    assert loaded.returncode == 0 and loaded.stdout.strip().endswith("True"), loaded.stderr[-2000:]


NOISE = ("Warning", "warnings.warn", "Loading weights", "Writing model shards", "[transformers]")


def test_the_output_is_ours_and_debug_shows_the_libraries_again(work):
    """RL exports the SFT model and trains with transformers and TRL: none of their warnings or
    progress bars reach the output unless --debug asks for them."""
    quiet = run_cli("nano3", "rl", "rl.steps=1", "run.name=quiet", cwd=work, timeout=900)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert not [noise for noise in NOISE if noise in quiet.stdout + quiet.stderr], quiet.stderr[-3000:]
    assert "grpo step 1/1" in quiet.stdout
    loud = run_cli("--debug", "nano3", "rl", "rl.steps=1", "run.name=loud", cwd=work, timeout=900)
    assert loud.returncode == 0, loud.stderr[-3000:]
    assert "FutureWarning" in loud.stderr  # transformers' own, shown again


@pytest.mark.parametrize("args,fragment", [
    (["rl.backend=nemo_rl"], "rl.backend=nemo_rl needs NeMo-RL"),
    (["rl.backend=ppo"], "rl.backend must be one of 'trl', 'nemo_rl', got 'ppo'"),
    (["run.data=nano3-sft-data-tiny:latest"], "is a SFTDataArtifact, RL needs a SplitJsonlDataArtifact"),
    (["run.model=nano3-rl-data-tiny:latest"], "is a SplitJsonlDataArtifact, RL needs a ModelArtifact"),
])
def test_bad_inputs_are_one_line_errors(work, args, fragment):
    done = run_cli("nano3", "rl", *args, cwd=work, timeout=600)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and fragment in lines[-2], done.stderr[-2000:]
