"""What the training steps share: the run directory, the checks before any process starts,
and running the training processes: one, ``train.nproc_per_node`` through torchrun, or one per
task of the enclosing SLURM job through srun.

Training runs in child processes so that Megatron's process-wide state never outlives a job;
the step's own process only prepares the job, waits, and logs the result.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from nemo_runspec.errors import ConfigError, NemotronError, TypeMismatchError
from nemo_runspec.slurm.rendezvous import allocation_tasks, first_node, srun_args
from nemotron.stages import outputs

# train keys that change how a run is executed or shown, never what it computes.
_NOT_IN_FINGERPRINT = ("output_root", "nproc_per_node", "device")


class TrainingFailed(NemotronError):
    """A training process exited with an error."""


def run_training_job(job: dict[str, Any], run_dir: Path, nproc: int) -> dict[str, Any]:
    """Write the job file, run the training processes, return rank 0's result."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "resolved_config.yaml").write_text(_yaml(job), encoding="utf-8")
    job_file = run_dir / "job.json"
    job_file.write_text(json.dumps(job, indent=1), encoding="utf-8")
    result_file = run_dir / "result.json"
    result_file.unlink(missing_ok=True)
    entry = ["-m", "nemotron.train.launch", str(job_file)]
    env = dict(os.environ)
    if allocation_tasks() > 1:
        command = srun_command(entry, env)
    elif nproc > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *entry]
        env.setdefault("OMP_NUM_THREADS", "1")
    else:
        command = [sys.executable, *entry]
        env.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    status = subprocess.run(command, env=env).returncode
    if status != 0 or not result_file.is_file():
        raise TrainingFailed(f"training exited with status {status} (run directory {run_dir})",
                             hint="the lines above are the training processes' own errors; a rerun resumes "
                                  "from the last complete checkpoint")
    return json.loads(result_file.read_text())


def srun_command(entry: list[str], env: dict[str, str]) -> list[str]:
    """Inside a SLURM job with several tasks: one process per task, through srun; ``env`` gets
    the rendezvous (each task reads its rank from SLURM's variables)."""
    env.update(MASTER_ADDR=first_node(), MASTER_PORT=str(free_port("0.0.0.0")))
    env.setdefault("OMP_NUM_THREADS", "1")
    container = srun_args()
    # In a container the interpreter is the image's, not this one's path on the node.
    python = "python" if container else sys.executable
    # No --unbuffered: it gives each task a pseudo-terminal, and rich would redraw its live
    # progress bar into the job's log file.
    return ["srun", "--kill-on-bad-exit=1", *container, python, *entry]


def typed_input(tracking, key: str, ref: str, type_name: str, step: str, what: str):
    """The record ``run.<key>`` names, if it is a ``type_name``; a one-line error otherwise."""
    record = tracking.resolve(ref)
    if record.type != type_name:
        raise TypeMismatchError(f"run.{key}={ref} is a {record.type}, {step} needs a {type_name}",
                                hint=f"point run.{key} at {what}")
    return record


def train_and_log(tracking, config: dict[str, Any], stage: str, inputs: list, show_progress: bool,
                  init_checkpoint: str | None = None, parent_model: str | None = None):
    """The common end of the training steps: skip a finished run, else train and log the model.

    ``inputs`` are the pinned records the run reads; the last one is its training data."""
    check_model_fits(config)
    directory, digest = run_dir(config, [record.uri for record in inputs])
    if (existing := finished_run(config, directory, digest)) is not None:
        return existing
    job = {
        "stage": stage,
        "run_dir": str(directory),
        "init_checkpoint": init_checkpoint,
        "model": config["model"],
        "train": config["train"],
        "optimizer": config["optimizer"],
        "data": config["data"],
        "tracking": config.get("tracking"),
        "show_progress": show_progress,
    }
    result = run_training_job(job, directory, world_size(config))
    return log_model(tracking, config, stage, result, directory, digest, training_data=inputs[-1].uri,
                     parent_model=parent_model)


def check_model_fits(config: dict[str, Any]) -> None:
    """Refuse GPU-only architectures before any process starts."""
    model, train = config["model"], config["train"]
    if model.get("requires_gpu") and train.get("device") != "cuda":
        import torch

        if train.get("device") == "cpu" or not torch.cuda.is_available():
            raise ConfigError(f"model {model.get('name')!r} runs on GPUs only: {model.get('gpu_only_reason', 'it needs CUDA')}",
                              hint="use model=tiny on this machine, or run on a GPU node (--run PROFILE)")
    if world_size(config) % int(train["tensor_parallel"]):
        what = (f"the SLURM job's {allocation_tasks()} tasks" if allocation_tasks() > 1
                else f"train.nproc_per_node={train['nproc_per_node']}")
        raise ConfigError(f"{what} is not a multiple of train.tensor_parallel={train['tensor_parallel']}")


def world_size(config: dict[str, Any]) -> int:
    """Training processes: the SLURM job's tasks when it has several, else train.nproc_per_node."""
    tasks = allocation_tasks()
    return tasks if tasks > 1 else int(config["train"]["nproc_per_node"])


def run_dir(config: dict[str, Any], inputs: list[str]) -> tuple[Path, str]:
    """``<train.output_root>/<run.name>/<fingerprint>`` of everything the run computes from."""
    return outputs.output_dir(config["train"]["output_root"], config["run"]["name"], {
        "model": config["model"],
        "train": {k: v for k, v in config["train"].items() if k not in _NOT_IN_FINGERPRINT},
        "optimizer": config["optimizer"],
        "inputs": inputs,
    })


def finished_run(config: dict[str, Any], directory: Path, digest: str):
    """The model already logged from this run directory, if the run finished and was logged."""
    from nemotron.kit.artifacts import ModelArtifact

    existing = outputs.already_logged(ModelArtifact, config["run"]["name"], directory, digest, "result.json")
    if existing is not None:
        print(f"{existing.name}:v{existing.version} already holds this run ({directory}); nothing to do")
    return existing


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _yaml(data: dict[str, Any]) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(data))


def log_model(tracking, config: dict[str, Any], stage: str, result: dict[str, Any], directory: Path, digest: str,
              training_data: str, parent_model: str | None = None):
    """Log the run's final checkpoint as a ModelArtifact, inputs pinned by the caller."""
    from nemo_runspec.artifacts import log_artifact
    from nemotron.kit.artifacts import ModelArtifact

    artifact = ModelArtifact(
        path=Path(result["checkpoint"]),
        stage=stage,
        step=result["step"],
        format="megatron",
        final_loss=result["final_loss"],
        tokens_seen=result["tokens_seen"],
        parent_model=parent_model,
        training_data=training_data,
        metadata={
            "run_dir": str(directory),
            "fingerprint": digest,
            "val_loss": result.get("val_loss"),
            "processes": result.get("processes"),
            "data_parallel": result.get("data_parallel"),
            "metrics": str(directory / "metrics.jsonl"),
            "loss_plot": result.get("plot"),
            "vocab_size": config["data"]["vocab_size"],
            "tokenizer_sha256": config["data"]["tokenizer_sha256"],
            "architecture": config["model"],
            "config": config,
        },
    )
    log_artifact(artifact, tracking, name=config["run"]["name"])
    print(f"logged {artifact.name}:v{artifact.version}: step {artifact.step}, loss {artifact.final_loss:.4f}, "
          f"{artifact.tokens_seen} tokens -> {artifact.path}")
    return artifact
