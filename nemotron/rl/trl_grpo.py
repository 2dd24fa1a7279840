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
from pathlib import Path
from typing import Any

from nemo_runspec.errors import DataError
from nemo_runspec.schema import validate
from nemotron.schemas.rl import RLConfig, RewardSpec
from nemotron.train.metrics import METRICS_FILE, plot_loss

RESULT_FILE = "result.json"
REWARD_SERIES = (("reward", "mean reward"), ("kl", "KL to the reference"))


def load_prompts(path: Path, tokenizer=None, max_prompt_length: int | None = None):
    """The split JSONL as a datasets.Dataset of conversational prompts and answers; with a
    tokenizer, a prompt longer than ``max_prompt_length`` tokens (chat template applied) is a
    one-line error naming its line (TRL itself would silently keep it whole)."""
    from datasets import Dataset

    lines = path.read_text(encoding="utf-8").splitlines()
    rows = [(number, json.loads(line)) for number, line in enumerate(lines, 1) if line.strip()]
    if tokenizer is not None and max_prompt_length is not None:
        for number, row in rows:
            length = len(tokenizer.apply_chat_template(row["messages"], add_generation_prompt=True, tokenize=True,
                                                         return_dict=False))
            if length > max_prompt_length:
                raise DataError(f"{path}:{number}: the prompt is {length} tokens, more than rl.max_prompt_length="
                                f"{max_prompt_length}", hint="raise rl.max_prompt_length or shorten the prompt")
    return Dataset.from_list([{"prompt": row["messages"], "expected_answer": str(row["expected_answer"])}
                              for _, row in rows])


def rewards_from(specs: list[RewardSpec | dict[str, Any]]) -> tuple[list, list[float]]:
    """The reward callables and their weights, each built from its ``_target_`` by Hydra."""
    from hydra.utils import instantiate

    functions, weights = [], []
    for spec in specs:
        spec = spec if isinstance(spec, RewardSpec) else RewardSpec.model_validate(spec)
        weights.append(spec.weight)
        functions.append(instantiate({"_target_": spec.target, **(spec.model_extra or {})}))
    return functions, weights


def grpo_arguments(rl: RLConfig, run_dir: Path, cuda: bool, weights: list[float]) -> dict[str, Any]:
    """TRL's GRPOConfig arguments from the ``rl`` group: every key TRL can honour reaches it
    (max_prompt_length is checked on the prompts, see :func:`load_prompts`; micro_batch_size,
    gpus_per_node, num_nodes, eval/checkpoint intervals and verifier_workers are NeMo-RL's)."""
    return dict(
        output_dir=str(run_dir / "trl"),
        use_cpu=not cuda,
        bf16=cuda and rl.precision == "bf16",
        fp16=cuda and rl.precision == "fp16",
        max_steps=rl.steps,
        per_device_train_batch_size=rl.prompts_per_step * rl.num_generations,
        num_generations=rl.num_generations,
        max_completion_length=rl.max_completion_length,
        temperature=rl.temperature,
        learning_rate=rl.lr,
        beta=rl.kl_coef,
        epsilon=rl.clip_epsilon,
        max_grad_norm=rl.clip_grad,
        reward_weights=weights,
        seed=rl.seed,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_dropout=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


def train(job: dict[str, Any]) -> dict[str, Any]:
    import torch
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    rl, run_dir = validate(RLConfig, job["rl"], "rl"), Path(job["run_dir"])
    cuda = torch.cuda.is_available() and rl.device != "cpu"
    functions, weights = rewards_from(rl.rewards)
    tokenizer = AutoTokenizer.from_pretrained(job["policy"])
    config = GRPOConfig(**grpo_arguments(rl, run_dir, cuda, weights))
    trainer = GRPOTrainer(model=job["policy"], reward_funcs=functions, args=config,
                          train_dataset=load_prompts(Path(job["data"]["train_path"]), tokenizer, rl.max_prompt_length),
                          processing_class=tokenizer)
    _one_line_per_step(trainer, rl.steps)
    trainer.train()
    policy = run_dir / "policy"
    trainer.save_model(str(policy))  # collective: every rank takes part, the main one writes
    if not trainer.is_world_process_zero():
        return {}
    # transformers' Trainer pickles its arguments beside the weights (training_args.bin); a
    # published artifact holds no pickle, so they are kept as JSON, readable without running code,
    # with the output folder relative to the run's, so the file does not depend on where it lives.
    (policy / "training_args.bin").unlink(missing_ok=True)
    arguments = {**json.loads(trainer.args.to_json_string()), "output_dir": "trl"}
    (policy / "training_args.json").write_text(json.dumps(arguments, indent=2), encoding="utf-8")
    tokenizer.save_pretrained(str(policy))
    records = _metrics(trainer.state.log_history, [f.__name__ for f in functions])
    (run_dir / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))
    last = records[-1] if records else {}
    spread = [r["groups_with_advantage"] for r in records if "groups_with_advantage" in r]
    result = {"step": int(trainer.state.global_step), "final_reward": last.get("reward"), "final_kl": last.get("kl"),
              "groups_with_advantage": sum(spread) / len(spread) if spread else None,
              "final_loss": last.get("loss"), "policy": str(policy), "processes": trainer.accelerator.num_processes,
              "cpu_threads": None if cuda else torch.get_num_threads(),  # reproduce reruns with them
              "plot": str(plot_loss(run_dir, REWARD_SERIES, "reward.png", "value"))}
    (run_dir / RESULT_FILE).write_text(json.dumps(result, indent=1))
    return result


def _one_line_per_step(trainer, steps: int) -> None:
    """Replace the trainer's printing of whole log dicts with one line per step."""
    from transformers import PrinterCallback, TrainerCallback

    class StepLine(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "reward" in logs and state.is_world_process_zero:
                varied = 1.0 - logs.get("frac_reward_zero_std", 1.0)
                print(f"grpo step {state.global_step}/{steps}: reward {logs['reward']:.4f}  "
                      f"kl {logs.get('kl', 0.0):.5f}  loss {logs.get('loss', 0.0):.4f}  "
                      f"groups with advantage {varied:.0%}", flush=True)

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
        if "frac_reward_zero_std" in entry:  # groups whose completions all scored alike: no advantage, no update
            record["groups_with_advantage"] = 1.0 - float(entry["frac_reward_zero_std"])
        for name in reward_names:
            key = f"rewards/{name}/mean"
            if key in entry:
                record[f"reward/{name}"] = float(entry[key])
        records.append(record)
    return records


def main(argv: list[str]) -> int:
    import os

    from nemo_runspec.errors import run_job_file
    from nemo_runspec.quiet import quiet_third_party
    from nemo_runspec.slurm.rendezvous import torch_env

    os.environ.update(torch_env())  # an srun task: accelerate reads RANK/WORLD_SIZE/LOCAL_RANK
    quiet_third_party()
    return run_job_file(argv, train)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
