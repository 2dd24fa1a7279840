"""Stage-2 training step: GRPO of the SFT model -> ModelArtifact (stage=rl, format=hf).

The policy starts from run.model: a Hugging Face model as is, a Megatron checkpoint after an
export into the run directory (not logged separately: the RL model's parent is the SFT model
itself). ``rl.backend`` picks TRL (this machine, accelerate on GPUs) or NeMo-RL (clusters, in
its container). Mean reward and KL per step go to the run's metrics file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from nemo_runspec.slurm.rendezvous import allocation_tasks
from nemotron.kit.artifacts import ModelArtifact
from nemotron.rl.trl_grpo import RESULT_FILE
from nemotron.schemas.rl import EXECUTION_KEYS
from nemotron.schemas.steps import RLStep
from nemotron.stages.step import Input, Output, Produced, receive, run_step
from nemotron.stages.training import TrainingFailed, srun_command

INPUTS = (Input("model", "ModelArtifact", "the SFT model"),
          Input("data", "SplitJsonlDataArtifact", "the output of `data prep rl`"))


def train_rl(cfg: Any, *, show_progress: bool = True) -> ModelArtifact:
    step = receive(cfg, RLStep, "RL", INPUTS)
    parent, data = step.inputs
    rl, plain = step.typed.rl, step.plain
    if rl.backend == "nemo_rl":
        from nemotron.rl import nemo_rl

        nemo_rl.require()
        nemo_rl.check_allocation()
        nemo_rl.reward_environment(rl)  # a reward NeMo-RL cannot compute: refused before any work

    def produce(output: Output) -> Produced[ModelArtifact]:
        directory = output.directory
        directory.mkdir(parents=True, exist_ok=True)
        from nemotron.stages.export import hugging_face_directory

        policy = hugging_face_directory(parent, directory / "initial-policy")
        job = {"run_dir": str(directory), "policy": str(policy), "data": plain["data"], "rl": plain["rl"]}
        (directory / "job.json").write_text(json.dumps(job, indent=1), encoding="utf-8")
        result = _run_nemo_rl(job, directory) if rl.backend == "nemo_rl" else _run_trl(directory, rl.nproc_per_node)
        artifact = ModelArtifact(
            path=Path(result["policy"]), stage="rl", step=result["step"], format="hf",
            final_loss=result.get("final_loss"), parent_model=parent.uri, training_data=data.uri,
            metadata={"run_dir": str(directory), "backend": rl.backend,
                      "processes": result.get("processes", 1), "cpu_threads": result.get("cpu_threads"),
                      "final_reward": result.get("final_reward"),
                      "final_kl": result.get("final_kl"), "metrics": str(directory / "metrics.jsonl"),
                      "groups_with_advantage": result.get("groups_with_advantage"),
                      "reward_plot": result.get("plot"), "architecture": parent.metadata.get("architecture"),
                      "tokenizer_sha256": parent.metadata.get("tokenizer_sha256"), "config": plain},
        )
        return Produced(artifact, f"{artifact.step} GRPO steps, last reward {_shown(result.get('final_reward'))}, "
                                  f"KL {_shown(result.get('final_kl'), 5)}, groups with advantage "
                                  f"{_shown(result.get('groups_with_advantage'), percent=True)}")

    return run_step(step.tracking, ModelArtifact, step.typed.run.name, root=rl.output_root, identity={
        "rl": {k: v for k, v in plain["rl"].items() if k not in EXECUTION_KEYS},
        "inputs": [parent.uri, data.uri],
    }, marker=RESULT_FILE, produce=produce, what="run")


def _shown(value, digits: int = 4, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:.0%}" if percent else f"{value:.{digits}f}"


def _run_trl(directory: Path, nproc: int) -> dict[str, Any]:
    entry = ["-m", "nemotron.rl.trl_grpo", str(directory / "job.json")]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    if allocation_tasks() > 1:
        command = srun_command(entry, env)
    elif nproc > 1:
        command = [sys.executable, "-m", "accelerate.commands.launch", f"--num_processes={nproc}", *entry]
    else:
        command = [sys.executable, *entry]
    (directory / RESULT_FILE).unlink(missing_ok=True)
    status = subprocess.run(command, env=env).returncode
    if status != 0 or not (directory / RESULT_FILE).is_file():
        raise TrainingFailed(f"GRPO exited with status {status} (run directory {directory})",
                             hint="the lines above are the RL process's own errors")
    return json.loads((directory / RESULT_FILE).read_text())


def _run_nemo_rl(job: dict[str, Any], directory: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf

    from nemotron.rl import nemo_rl

    config = nemo_rl.grpo_config(job["rl"], job["policy"], job["data"]["train_path"], job["data"].get("val_path"),
                                 str(directory))
    config_file = directory / "nemo_rl_grpo.yaml"
    config_file.write_text(OmegaConf.to_yaml(OmegaConf.create(config)), encoding="utf-8")
    status = nemo_rl.launch(config_file)
    if status != 0:
        raise TrainingFailed(f"NeMo-RL GRPO exited with status {status} (config {config_file})")
    checkpoints = sorted((directory / "nemo_rl_checkpoints").glob("step_*"))
    if not checkpoints:
        raise TrainingFailed(f"NeMo-RL wrote no checkpoint under {directory / 'nemo_rl_checkpoints'}")
    return {"step": int(checkpoints[-1].name.split("_")[-1]), "policy": str(checkpoints[-1] / "policy" / "weights")}
