"""The NeMo-RL backend: our RL config written as NeMo-RL's GRPO configuration, then launched.

NeMo-RL comes from its container or source tree on GPU clusters (``nemo-rl`` on PyPI, 0.0.0,
is a non-functional placeholder). The written file follows the layout of NeMo-RL's
``examples/configs/grpo_math_1B.yaml`` (top-level grpo, loss_fn, checkpointing, policy,
data, env, logger, cluster), with our split JSONL as a ``ResponseDataset`` (``input_key``
problem, ``output_key`` the verifier's answer column).

NeMo-RL computes rewards in its own environments, not by calling ours, so ``rl.rewards`` must
name a reward that one of them computes (:data:`ENVIRONMENTS`); any other is refused when the
configuration is written, before NeMo-RL starts, rather than silently replaced.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nemo_runspec.errors import ConfigError
from nemo_runspec.schema import validate
from nemotron.schemas.rl import RLConfig

ENTRY = "examples/run_grpo_math.py"
# rl.precision -> NeMo-RL's policy.precision (a torch dtype name).
PRECISIONS = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
# Our reward targets that a NeMo-RL environment computes, and that environment: the math
# environment scores 1.0 when the response's final answer equals the ground truth, as
# MathVerifier does. ENTRY runs that one environment and no other.
ENVIRONMENTS = {"nemotron.rl.rewards.MathVerifier": "math"}


def grpo_config(rl: RLConfig | Mapping[str, Any], policy_dir: str, train_path: str, val_path: str | None,
                run_dir: str) -> dict[str, Any]:
    """NeMo-RL's GRPO configuration for our ``rl`` section."""
    rl = rl if isinstance(rl, RLConfig) else validate(RLConfig, rl, "rl")
    environment, answer_key = reward_environment(rl)
    return {
        "grpo": {
            "num_prompts_per_step": rl.prompts_per_step,
            "num_generations_per_prompt": rl.num_generations,
            "max_rollout_turns": 1,
            "max_num_epochs": 1,
            "max_num_steps": rl.steps,
            "normalize_rewards": True,
            "use_leave_one_out_baseline": True,
            "val_period": rl.eval_interval or 0,
            "val_at_start": False,
            "overlong_filtering": False,
            "max_val_samples": rl.max_val_samples,
            "val_batch_size": rl.max_val_samples,
            "seed": rl.seed,
        },
        "loss_fn": {
            "reference_policy_kl_penalty": rl.kl_coef,
            "ratio_clip_min": rl.clip_epsilon,
            "ratio_clip_max": rl.clip_epsilon,
            "ratio_clip_c": None,
            "use_on_policy_kl_approximation": False,
            "use_importance_sampling_correction": False,
            "sequence_level_importance_ratios": False,
            "token_level_loss": True,
        },
        "checkpointing": {
            "enabled": True,
            "checkpoint_dir": str(Path(run_dir) / "nemo_rl_checkpoints"),
            "metric_name": "val_reward",
            "higher_is_better": True,
            "keep_top_k": 3,
            "save_period": rl.checkpoint_interval or rl.steps,
            "model_save_format": "safetensors",
            "save_consolidated": True,
        },
        "policy": {
            "model_name": policy_dir,
            "tokenizer": {"name": policy_dir},
            "train_global_batch_size": rl.prompts_per_step * rl.num_generations,
            "train_micro_batch_size": rl.micro_batch_size,
            "generation_batch_size": rl.prompts_per_step,
            "logprob_batch_size": rl.micro_batch_size,
            "max_total_sequence_length": rl.max_prompt_length + rl.max_completion_length,
            "precision": PRECISIONS[rl.precision],
            "max_grad_norm": rl.clip_grad,
            "optimizer": {"name": "torch.optim.AdamW",
                          "kwargs": {"lr": rl.lr, "weight_decay": 0.01, "betas": [0.9, 0.999], "eps": 1e-8,
                                     "foreach": False, "fused": False}},
            "generation": {"backend": "vllm", "max_new_tokens": rl.max_completion_length,
                           "temperature": rl.temperature, "top_p": 1.0, "top_k": None,
                           "stop_token_ids": None, "stop_strings": None},
        },
        "data": {
            "dataset_name": "ResponseDataset",
            "train_data_path": train_path,
            "val_data_path": val_path,
            "input_key": "problem",
            "output_key": answer_key,
            "max_input_seq_length": rl.max_prompt_length,
            "shuffle": True,
        },
        "env": environment,
        "logger": {"log_dir": str(Path(run_dir) / "logs"), "wandb_enabled": False, "tensorboard_enabled": False,
                   "mlflow_enabled": False, "monitor_gpus": True},
        "cluster": {"gpus_per_node": rl.gpus_per_node, "num_nodes": rl.num_nodes},
    }


def reward_environment(rl: RLConfig) -> tuple[dict[str, Any], str]:
    """NeMo-RL's ``env`` section for ``rl.rewards`` and the data column holding the answer;
    a one-line ConfigError for rewards NeMo-RL cannot compute."""
    other_backend = "rl.backend=trl runs any reward callable"
    for i, spec in enumerate(rl.rewards):
        if spec.target not in ENVIRONMENTS:
            raise ConfigError(f"rl.rewards[{i}]: {spec.target} has no NeMo-RL environment "
                              f"(rl.backend=nemo_rl runs {', '.join(ENVIRONMENTS)})", hint=other_backend)
    if len(rl.rewards) != 1:
        raise ConfigError(f"rl.rewards lists {len(rl.rewards)} rewards; NeMo-RL's {ENTRY} runs one environment",
                          hint=f"keep one reward; {other_backend}")
    (spec,) = rl.rewards
    if spec.weight != 1.0:
        raise ConfigError(f"rl.rewards[0].weight={spec.weight}: NeMo-RL's math environment has no reward weight",
                          hint="set it to 1.0 (GRPO normalises the rewards within each group anyway)")
    options = dict(spec.model_extra or {})
    unknown = sorted(set(options) - {"answer_field"})
    if unknown:
        raise ConfigError(f"rl.rewards[0].{unknown[0]}: NeMo-RL's math environment has no such setting",
                          hint="MathVerifier takes answer_field (the data column holding the answer)")
    environment = {ENVIRONMENTS[spec.target]: {"num_workers": rl.verifier_workers, "math_verify_impl": "hf_math_verify"}}
    return environment, str(options.get("answer_field", "expected_answer"))


def check_allocation(env: dict[str, str] | None = None) -> None:
    """NeMo-RL spreads its workers with Ray: inside a SLURM allocation of several nodes it joins
    a Ray cluster already started across them (``RAY_ADDRESS``), or it would use one node alone."""
    env = os.environ if env is None else env
    nodes = int(env.get("SLURM_JOB_NUM_NODES") or 1) if env.get("SLURM_JOB_ID") else 1
    if nodes > 1 and not env.get("RAY_ADDRESS"):
        raise ConfigError(
            f"rl.backend=nemo_rl on {nodes} nodes needs a Ray cluster across them, and RAY_ADDRESS is not set",
            hint="start Ray on the allocation first (NeMo-RL's ray.sub does) and export RAY_ADDRESS in the "
                 "profile's setup, or use a one-node profile",
        )


def require() -> None:
    """Fail early, with what to install, where NeMo-RL is not importable."""
    if importlib.util.find_spec("nemo_rl") is None:
        raise ConfigError(
            "rl.backend=nemo_rl needs NeMo-RL, which is not installed here",
            hint="run in the NeMo-RL container (docker/rl.Dockerfile) or install NeMo-RL from source "
                 "(https://github.com/NVIDIA-NeMo/RL); use rl.backend=trl on this machine",
        )


def launch(config_file: Path) -> int:
    """Run NeMo-RL's GRPO entry point on ``config_file`` (Ray starts inside it)."""
    require()
    root = Path(os.environ.get("NEMO_RL_DIR", "/opt/nemo-rl"))
    entry = root / ENTRY
    if not entry.is_file():
        raise ConfigError(f"NeMo-RL's {ENTRY} is not at {root}", hint="set NEMO_RL_DIR to NeMo-RL's source tree")
    return subprocess.run([sys.executable, str(entry), "--config", str(config_file)], cwd=root).returncode
