"""What the training steps share: the run directory, the checks before any process starts,
and running the training processes: one, ``train.nproc_per_node`` through torchrun, or one per
task of the enclosing SLURM job through srun.

Training runs in child processes so that Megatron's process-wide state never outlives a job;
the step's own process only prepares the job, waits, and logs the result.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from nemo_runspec.errors import ConfigError, Interrupted, NemotronError
from nemo_runspec.slurm.rendezvous import allocation_tasks, first_node, free_port, single_process_env, srun_args
from nemo_runspec.stop_signals import run_passing_on_stops
from nemotron.kit.artifacts import ModelArtifact
from nemotron.schemas.steps import TrainingStep
from nemotron.schemas.train import EXECUTION_KEYS
from nemotron.stages.step import Output, Produced, Received, run_step, write_resolved_config
from nemotron.train import preemption
from nemotron.train.buildable import check_layout, check_supported, needs_gpu_features

RESULT_FILE = "result.json"  # rank 0 writes it when a run ends (nemotron.train.loop)


class TrainingFailed(NemotronError):
    """A training process exited with an error."""


class TrainingStopped(Interrupted):
    """The training processes stopped on a signal after saving a checkpoint."""


def run_training_job(job: dict[str, Any], run_dir: Path, nproc: int) -> dict[str, Any]:
    """Write the job file, run the training processes, return rank 0's result."""
    write_resolved_config(run_dir, job)
    job_file = run_dir / "job.json"
    job_file.write_text(json.dumps(job, indent=1), encoding="utf-8")
    result_file = run_dir / RESULT_FILE
    result_file.unlink(missing_ok=True)
    (run_dir / preemption.PREEMPTED_FILE).unlink(missing_ok=True)  # only this run's stop counts
    entry = ["-m", "nemotron.train.launch", str(job_file)]
    env = dict(os.environ)
    if allocation_tasks() > 1:
        command = srun_command(entry, env)
    elif nproc > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *entry]
        env.setdefault("OMP_NUM_THREADS", "1")
    else:
        command = [sys.executable, *entry]
        env.update(single_process_env())
    # A stop signal goes on to the training processes, which checkpoint and stop (see
    # nemo_runspec.stop_signals for torchrun's part).
    torchrun = nproc > 1 and allocation_tasks() <= 1
    status = run_passing_on_stops(command, env=env, as_signal=signal.SIGTERM if torchrun else None,
                                  ignore_usr1=torchrun)
    if (stopped := preemption.read(run_dir)) is not None:
        raise TrainingStopped(f"training stopped at step {stopped['step']} on {stopped['signal']} and saved a "
                              f"checkpoint (run directory {run_dir})", hint="run the same command to resume")
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


def train_and_log(step: Received[TrainingStep], stage: str, show_progress: bool, parent_model: str | None = None,
                  init_checkpoint: str | None = None):
    """The common end of the training steps: skip a finished run, else train and log the model.

    The step's inputs are the pinned records the run reads; the last one is its training data."""
    config, plain, inputs = step.typed, step.plain, step.inputs
    check_model_fits(config)

    def produce(output: Output) -> Produced:
        job = {
            "stage": stage,
            "run_dir": str(output.directory),
            "init_checkpoint": init_checkpoint,
            "model": plain["model"],
            "train": plain["train"],
            "optimizer": plain["optimizer"],
            "data": plain["data"],
            "tracking": plain.get("tracking"),
            "show_progress": show_progress,
        }
        result = run_training_job(job, output.directory, world_size(config))
        return model_artifact(plain, stage, result, output.directory, training_data=inputs[-1].uri,
                              parent_model=parent_model)

    return run_step(step.tracking, ModelArtifact, config.run.name, root=config.train.output_root, identity={
        "model": plain["model"],
        "train": {k: v for k, v in plain["train"].items() if k not in EXECUTION_KEYS},
        "optimizer": plain["optimizer"],
        "inputs": [record.uri for record in inputs],
    }, marker=RESULT_FILE, produce=produce, what="run")


def check_model_fits(config: TrainingStep) -> None:
    """Refuse GPU-only architectures and layouts the processes cannot form, before any starts."""
    model, train = config.model, config.train
    if model.requires_gpu and train.device != "cuda":
        import torch

        if train.device == "cpu" or not torch.cuda.is_available():
            raise ConfigError(f"model {model.name!r} runs on GPUs only: {model.gpu_only_reason or 'it needs CUDA'}",
                              hint="use model=tiny on this machine, or run on a GPU node (--run PROFILE)")
    check_supported(model, cuda=True)  # the rest of what the builder refuses, before a process starts
    world = world_size(config)
    if world % train.tensor_parallel:
        what = (f"the SLURM job's {allocation_tasks()} tasks" if allocation_tasks() > 1
                else f"train.nproc_per_node={train.nproc_per_node}")
        raise ConfigError(f"{what} is not a multiple of train.tensor_parallel={train.tensor_parallel}")
    cuda = has_te = False
    if needs_gpu_features(train):  # only then is torch worth importing here
        import importlib.util

        import torch

        cuda = train.device != "cpu" and torch.cuda.is_available()
        has_te = importlib.util.find_spec("transformer_engine") is not None
    check_layout(train, world, cuda, has_te)


def world_size(config: TrainingStep) -> int:
    """Training processes: the SLURM job's tasks when it has several, else train.nproc_per_node."""
    tasks = allocation_tasks()
    return tasks if tasks > 1 else config.train.nproc_per_node


def model_artifact(config: dict[str, Any], stage: str, result: dict[str, Any], directory: Path, training_data: str,
                   parent_model: str | None = None) -> Produced:
    """The run's final checkpoint as a ModelArtifact, inputs pinned by the caller."""
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
            "val_loss": result.get("val_loss"),
            "processes": result.get("processes"),
            "data_parallel": result.get("data_parallel"),
            "cpu_threads": result.get("cpu_threads"),
            "metrics": str(directory / "metrics.jsonl"),
            "loss_plot": result.get("plot"),
            "vocab_size": config["data"]["vocab_size"],
            "tokenizer_sha256": config["data"]["tokenizer_sha256"],
            "architecture": config["model"],
            "config": config,
        },
    )
    return Produced(artifact, f"step {artifact.step}, loss {artifact.final_loss:.4f}, {artifact.tokens_seen} tokens")
