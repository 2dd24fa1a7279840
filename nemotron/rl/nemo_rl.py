"""The NeMo-RL backend: our RL config written as NeMo-RL's GRPO configuration, then launched.

NeMo-RL comes from its container or source tree on GPU clusters (the PyPI package is a
placeholder, see notes/dependencies.md). The written file follows the layout of NeMo-RL's
``examples/configs/grpo_math_1B.yaml`` (top-level grpo, loss_fn, checkpointing, policy,
data, env, logger, cluster), with our split JSONL as a ``ResponseDataset`` (``input_key``
problem, ``output_key`` expected_answer) and the math environment as the verifier.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from nemo_runspec.errors import ConfigError

ENTRY = "examples/run_grpo_math.py"


def grpo_config(rl: dict[str, Any], policy_dir: str, train_path: str, val_path: str | None, run_dir: str) -> dict[str, Any]:
    """NeMo-RL's GRPO configuration for our ``rl`` section."""
    seq = int(rl["max_prompt_length"]) + int(rl["max_completion_length"])
    return {
        "grpo": {
            "num_prompts_per_step": int(rl["prompts_per_step"]),
            "num_generations_per_prompt": int(rl["num_generations"]),
            "max_rollout_turns": 1,
            "max_num_epochs": 1,
            "max_num_steps": int(rl["steps"]),
            "normalize_rewards": True,
            "use_leave_one_out_baseline": True,
            "val_period": int(rl.get("eval_interval") or 0),
            "val_at_start": False,
            "overlong_filtering": False,
            "max_val_samples": int(rl.get("max_val_samples", 256)),
            "val_batch_size": int(rl.get("max_val_samples", 256)),
            "seed": int(rl["seed"]),
        },
        "loss_fn": {
            "reference_policy_kl_penalty": float(rl["kl_coef"]),
            "ratio_clip_min": float(rl.get("clip_epsilon", 0.2)),
            "ratio_clip_max": float(rl.get("clip_epsilon", 0.2)),
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
            "save_period": int(rl.get("checkpoint_interval") or rl["steps"]),
            "model_save_format": "safetensors",
            "save_consolidated": True,
        },
        "policy": {
            "model_name": policy_dir,
            "tokenizer": {"name": policy_dir},
            "train_global_batch_size": int(rl["prompts_per_step"]) * int(rl["num_generations"]),
            "train_micro_batch_size": int(rl.get("micro_batch_size", 1)),
            "generation_batch_size": int(rl["prompts_per_step"]),
            "logprob_batch_size": int(rl.get("micro_batch_size", 1)),
            "max_total_sequence_length": seq,
            "precision": "bfloat16",
            "max_grad_norm": float(rl.get("clip_grad", 1.0)),
            "optimizer": {"name": "torch.optim.AdamW",
                          "kwargs": {"lr": float(rl["lr"]), "weight_decay": 0.01, "betas": [0.9, 0.999], "eps": 1e-8,
                                     "foreach": False, "fused": False}},
            "generation": {"backend": "vllm", "max_new_tokens": int(rl["max_completion_length"]),
                           "temperature": float(rl["temperature"]), "top_p": 1.0, "top_k": None,
                           "stop_token_ids": None, "stop_strings": None},
        },
        "data": {
            "dataset_name": "ResponseDataset",
            "train_data_path": train_path,
            "val_data_path": val_path,
            "input_key": "problem",
            "output_key": "expected_answer",
            "max_input_seq_length": int(rl["max_prompt_length"]),
            "shuffle": True,
        },
        "env": {"math": {"num_workers": int(rl.get("verifier_workers", 8)), "math_verify_impl": "hf_math_verify"}},
        "logger": {"log_dir": str(Path(run_dir) / "logs"), "wandb_enabled": False, "tensorboard_enabled": False,
                   "mlflow_enabled": False, "monitor_gpus": True},
        "cluster": {"gpus_per_node": int(rl.get("gpus_per_node", 1)), "num_nodes": int(rl.get("num_nodes", 1))},
    }


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
