"""The rl group reaches TRL: every key TRL can honour is one of GRPOConfig's arguments."""

import json

import pytest
from omegaconf import OmegaConf

from nemo_runspec.errors import DataError
from nemo_runspec.schema import validate
from nemotron.recipes import conf_dir
from nemotron.rl.trl_grpo import grpo_arguments, load_prompts, rewards_from
from nemotron.schemas.rl import RLConfig


def tiny_rl(**changes) -> RLConfig:
    rl = OmegaConf.to_container(OmegaConf.load(conf_dir() / "rl" / "tiny.yaml"))
    rl["output_root"] = "runs"
    return validate(RLConfig, {**rl, **changes}, "rl")


def test_every_trl_key_reaches_grpo_config(tmp_path):
    from trl import GRPOConfig

    rl = tiny_rl(clip_epsilon=0.3, clip_grad=0.5, kl_coef=0.07, temperature=0.7, precision="bf16")
    arguments = grpo_arguments(rl, tmp_path, cuda=True, weights=[1.0, 0.2])
    assert (arguments["epsilon"], arguments["max_grad_norm"], arguments["beta"]) == (0.3, 0.5, 0.07)
    assert arguments["temperature"] == 0.7 and arguments["bf16"] and not arguments["fp16"]
    assert arguments["per_device_train_batch_size"] == rl.prompts_per_step * rl.num_generations
    on_cpu = grpo_arguments(rl, tmp_path, cuda=False, weights=[1.0, 0.2])
    assert on_cpu["use_cpu"] and not on_cpu["bf16"]
    config = GRPOConfig(**on_cpu)  # TRL accepts every argument
    assert config.epsilon == 0.3 and config.num_generations == rl.num_generations


def test_rewards_are_built_from_their_targets_with_their_weights():
    functions, weights = rewards_from(tiny_rl().rewards)
    assert [type(f).__name__ for f in functions] == ["MathVerifier", "FormatReward"] and weights == [1.0, 0.5]
    shows_work = functions[1]  # the tiny task's format: an equation before the boxed answer
    assert shows_work([], ["3 + 5 = 8. \\boxed{8}", "\\boxed{8}"]) == [1.0, 0.0]


class FakeTokenizer:
    def apply_chat_template(self, messages, add_generation_prompt, tokenize, return_dict):
        return list(range(sum(len(m["content"].split()) for m in messages)))


def test_a_prompt_over_max_prompt_length_is_refused_naming_its_line(tmp_path):
    rows = [{"messages": [{"role": "user", "content": "one two"}], "expected_answer": "1"},
            {"messages": [{"role": "user", "content": "one two three four five"}], "expected_answer": "2"}]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert len(load_prompts(path, FakeTokenizer(), 5)) == 2
    with pytest.raises(DataError, match=rf"{path}:2: the prompt is 5 tokens, more than rl.max_prompt_length=4"):
        load_prompts(path, FakeTokenizer(), 4)
