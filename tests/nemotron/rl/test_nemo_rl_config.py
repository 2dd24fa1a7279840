"""The NeMo-RL GRPO configuration we write uses NeMo-RL's own keys.

REFERENCE is the key layout (not the values) of NeMo-RL's examples/configs/grpo_math_1B.yaml
(NVIDIA-NeMo/RL on GitHub), restricted to the sections we write.
"""

import pytest

from nemotron.rl.nemo_rl import grpo_config, launch

REFERENCE = {
    "grpo": {"num_prompts_per_step", "num_generations_per_prompt", "max_rollout_turns", "max_num_epochs",
             "max_num_steps", "normalize_rewards", "use_leave_one_out_baseline", "val_period", "val_at_start",
             "overlong_filtering", "max_val_samples", "val_batch_size", "seed", "async_grpo"},
    "loss_fn": {"reference_policy_kl_penalty", "ratio_clip_min", "ratio_clip_max", "ratio_clip_c",
                "use_on_policy_kl_approximation", "use_importance_sampling_correction",
                "sequence_level_importance_ratios", "token_level_loss"},
    "checkpointing": {"enabled", "checkpoint_dir", "metric_name", "higher_is_better", "keep_top_k", "save_period",
                      "checkpoint_must_save_by", "model_save_format", "save_consolidated"},
    "policy": {"model_name", "tokenizer", "train_global_batch_size", "train_micro_batch_size", "generation_batch_size",
               "logprob_batch_size", "max_total_sequence_length", "precision", "logprob_chunk_size", "dtensor_cfg",
               "megatron_cfg", "dynamic_batching", "sequence_packing", "make_sequence_length_divisible_by",
               "max_grad_norm", "optimizer", "scheduler", "generation"},
    "policy.generation": {"backend", "max_new_tokens", "temperature", "top_p", "top_k", "stop_token_ids",
                          "stop_strings", "vllm_cfg", "vllm_kwargs", "colocated"},
    "policy.optimizer": {"name", "kwargs"},
    # ResponseDataset keys as documented in the same file's data section.
    "data": {"max_input_seq_length", "prompt_file", "system_prompt_file", "shuffle", "dataset_name",
             "train_data_path", "val_data_path", "input_key", "output_key", "train_split", "val_split"},
    "env": {"math"},
    "env.math": {"num_workers", "math_verify_impl"},
    "logger": {"log_dir", "num_val_samples_to_print", "wandb_enabled", "tensorboard_enabled", "mlflow_enabled",
               "swanlab_enabled", "monitor_gpus", "wandb", "tensorboard", "mlflow", "gpu_monitoring"},
    "cluster": {"gpus_per_node", "num_nodes"},
}
MATH = {"_target_": "nemotron.rl.rewards.MathVerifier", "weight": 1.0}
RL = {"backend": "nemo_rl", "steps": 100, "prompts_per_step": 8, "num_generations": 4, "max_prompt_length": 256,
      "max_completion_length": 512, "kl_coef": 0.04, "lr": 1e-6, "temperature": 1.0, "seed": 7, "precision": "bf16",
      "output_root": "runs", "rewards": [MATH]}


def test_every_written_key_is_one_nemo_rl_uses():
    config = grpo_config(RL, "/models/policy", "/data/train.jsonl", "/data/val.jsonl", "/runs/x")
    assert set(config) == {"grpo", "loss_fn", "checkpointing", "policy", "data", "env", "logger", "cluster"}
    for section, keys in REFERENCE.items():
        node = config
        for part in section.split("."):
            node = node[part]
        assert set(node) <= keys, f"{section}: unknown keys {set(node) - keys}"


def test_values_come_from_our_config():
    config = grpo_config(RL, "/models/policy", "/data/train.jsonl", None, "/runs/x")
    assert config["policy"]["model_name"] == config["policy"]["tokenizer"]["name"] == "/models/policy"
    assert config["policy"]["max_total_sequence_length"] == 768
    assert config["policy"]["train_global_batch_size"] == 32
    assert config["loss_fn"]["reference_policy_kl_penalty"] == 0.04
    assert (config["data"]["input_key"], config["data"]["output_key"]) == ("problem", "expected_answer")
    assert config["grpo"]["max_num_steps"] == 100


@pytest.mark.parametrize("precision, dtype", [("bf16", "bfloat16"), ("fp16", "float16"), ("fp32", "float32")])
def test_policy_precision_is_rl_precision(precision, dtype):
    config = grpo_config({**RL, "precision": precision}, "/models/policy", "/data/train.jsonl", None, "/runs/x")
    assert config["policy"]["precision"] == dtype


def test_math_verifier_runs_as_the_math_environment_reading_its_answer_field():
    config = grpo_config({**RL, "verifier_workers": 3}, "/models/policy", "/data/train.jsonl", None, "/runs/x")
    assert config["env"] == {"math": {"num_workers": 3, "math_verify_impl": "hf_math_verify"}}
    assert config["data"]["output_key"] == "expected_answer"
    other_column = {**RL, "rewards": [{**MATH, "answer_field": "solution"}]}
    assert grpo_config(other_column, "/p", "/t.jsonl", None, "/r")["data"]["output_key"] == "solution"


@pytest.mark.parametrize("rewards, message", [
    ([{"_target_": "nemotron.rl.rewards.FormatReward"}],
     r"rl.rewards\[0\]: nemotron.rl.rewards.FormatReward has no NeMo-RL environment"),
    ([MATH, {"_target_": "nemotron.rl.rewards.FormatReward", "weight": 0.2}],
     r"rl.rewards\[1\]: nemotron.rl.rewards.FormatReward has no NeMo-RL environment"),
    ([MATH, MATH], "rl.rewards lists 2 rewards"),
    ([{**MATH, "weight": 0.5}], r"rl.rewards\[0\].weight=0.5: NeMo-RL's math environment has no reward weight"),
    ([{**MATH, "tolerance": 0.1}], r"rl.rewards\[0\].tolerance: NeMo-RL's math environment has no such setting"),
])
def test_a_reward_nemo_rl_cannot_compute_is_a_one_line_config_error(rewards, message):
    from nemo_runspec.errors import ConfigError

    with pytest.raises(ConfigError, match=message) as err:
        grpo_config({**RL, "rewards": rewards}, "/models/policy", "/data/train.jsonl", None, "/runs/x")
    assert "\n" not in str(err.value)


def test_the_shipped_nemo_rl_config_is_one_nemo_rl_runs():
    import yaml
    from helpers import REPO

    full = yaml.safe_load((REPO / "conf" / "rl" / "full.yaml").read_text())
    config = grpo_config(full, "/models/policy", "/data/train.jsonl", "/data/val.jsonl", "/runs/x")
    assert config["policy"]["precision"] == "bfloat16" and set(config["env"]) == {"math"}


def test_launch_without_nemo_rl_says_what_to_install(tmp_path):
    from nemo_runspec.errors import ConfigError

    with pytest.raises(ConfigError, match="needs NeMo-RL") as err:
        launch(tmp_path / "grpo.yaml")
    assert "container" in err.value.hint


def test_several_nodes_need_a_ray_cluster_to_join():
    from nemo_runspec.errors import ConfigError
    from nemotron.rl.nemo_rl import check_allocation

    check_allocation({})                                                   # not in SLURM
    check_allocation({"SLURM_JOB_ID": "7", "SLURM_JOB_NUM_NODES": "1"})  # one node: Ray starts locally
    check_allocation({"SLURM_JOB_ID": "7", "SLURM_JOB_NUM_NODES": "4", "RAY_ADDRESS": "10.0.0.1:6379"})
    with pytest.raises(ConfigError, match="on 4 nodes needs a Ray cluster") as err:
        check_allocation({"SLURM_JOB_ID": "7", "SLURM_JOB_NUM_NODES": "4"})
    assert "RAY_ADDRESS" in err.value.hint
