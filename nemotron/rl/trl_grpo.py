"""The TRL backend: GRPO with ``trl.GRPOTrainer`` on a Hugging Face policy.

Entry point of the RL process: ``python -m nemotron.rl.trl_grpo JOB.json``, started by the
stage step (directly on one machine, through accelerate on several GPUs, or one per task of a
SLURM job through srun, the rank taken from SLURM's variables). The job
names the policy directory (the exported SFT model), the split JSONL, the rewards (Hydra
``_target_`` specs) and the GRPO settings. Writes the trained policy to ``<run_dir>/policy``,
one metrics line per step (mean reward, reward per function, KL, loss) to ``metrics.jsonl``,
a reward plot, and ``result.json``.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

from nemotron.train.metrics import METRICS_FILE, plot_loss

RESULT_FILE = "result.json"
REWARD_SERIES = (("reward", "mean reward"), ("kl", "KL to the reference"))


def load_prompts(path: Path):
    """The split JSONL as a datasets.Dataset of conversational prompts and answers."""
    from datasets import Dataset

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return Dataset.from_list([{"prompt": row["messages"], "expected_answer": str(row["expected_answer"])}
                              for row in rows])


def rewards_from(specs: list[dict[str, Any]]) -> tuple[list, list[float]]:
    from hydra.utils import instantiate

    functions, weights = [], []
    for spec in specs:
        spec = dict(spec)
        weights.append(float(spec.pop("weight", 1.0)))
        functions.append(instantiate(spec))
    return functions, weights


def train(job: dict[str, Any]) -> dict[str, Any]:
    import torch
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    rl, run_dir = job["rl"], Path(job["run_dir"])
    cuda = torch.cuda.is_available() and rl.get("device", "auto") != "cpu"
    functions, weights = rewards_from(rl["rewards"])
    tokenizer = AutoTokenizer.from_pretrained(job["policy"])
    config = GRPOConfig(
        output_dir=str(run_dir / "trl"),
        use_cpu=not cuda,
        bf16=cuda and rl.get("precision") == "bf16",
        max_steps=int(rl["steps"]),
        per_device_train_batch_size=int(rl["prompts_per_step"]) * int(rl["num_generations"]),
        num_generations=int(rl["num_generations"]),
        max_completion_length=int(rl["max_completion_length"]),
        temperature=float(rl["temperature"]),
        learning_rate=float(rl["lr"]),
        beta=float(rl["kl_coef"]),
        reward_weights=weights,
        seed=int(rl["seed"]),
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_dropout=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(model=job["policy"], reward_funcs=functions, args=config,
                          train_dataset=load_prompts(Path(job["data"]["train_path"])), processing_class=tokenizer)
    _one_line_per_step(trainer, int(rl["steps"]))
    trainer.train()
    policy = run_dir / "policy"
    trainer.save_model(str(policy))  # collective: every rank takes part, the main one writes
    if not trainer.is_world_process_zero():
        return {}
    tokenizer.save_pretrained(str(policy))
    records = _metrics(trainer.state.log_history, [f.__name__ for f in functions])
    (run_dir / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))
    last = records[-1] if records else {}
    result = {"step": int(trainer.state.global_step), "final_reward": last.get("reward"), "final_kl": last.get("kl"),
              "final_loss": last.get("loss"), "policy": str(policy), "processes": trainer.accelerator.num_processes,
              "plot": str(plot_loss(run_dir, REWARD_SERIES, "reward.png", "value"))}
    (run_dir / RESULT_FILE).write_text(json.dumps(result, indent=1))
    return result


def _one_line_per_step(trainer, steps: int) -> None:
    """Replace the trainer's printing of whole log dicts with one line per step."""
    from transformers import PrinterCallback, TrainerCallback

    class StepLine(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "reward" in logs and state.is_world_process_zero:
                print(f"grpo step {state.global_step}/{steps}: reward {logs['reward']:.4f}  "
                      f"kl {logs.get('kl', 0.0):.5f}  loss {logs.get('loss', 0.0):.4f}", flush=True)

    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(StepLine())


def _metrics(history: list[dict[str, Any]], reward_names: list[str]) -> list[dict[str, Any]]:
    """TRL's per-step logs as our metrics records (step, reward, rewards by function, kl, loss)."""
    records = []
    for entry in history:
        if "reward" not in entry or "step" not in entry:
            continue
        record = {"step": int(entry["step"]), "reward": float(entry["reward"]), "kl": float(entry.get("kl", 0.0)),
                  "loss": float(entry.get("loss", 0.0)), "lr": float(entry.get("learning_rate", 0.0))}
        for name in reward_names:
            key = f"rewards/{name}/mean"
            if key in entry:
                record[f"reward/{name}"] = float(entry[key])
        records.append(record)
    return records


def main(argv: list[str]) -> int:
    import os

    from nemo_runspec.errors import run_job_file
    from nemo_runspec.slurm.rendezvous import torch_env

    os.environ.update(torch_env())  # an srun task: accelerate reads RANK/WORLD_SIZE/LOCAL_RANK
    warnings.filterwarnings("ignore", category=UserWarning)
    return run_job_file(argv, train)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
