"""Stage-0 training step: a composed config -> a logged ModelArtifact (stage=pretrain).

The run directory's fingerprint covers the model, schedule, optimizer and the pinned data
version, so the same command after a crash finds its checkpoints and resumes.
"""

from __future__ import annotations

from typing import Any

from nemo_runspec.artifacts import setup_artifact_tracking
from nemo_runspec.errors import TypeMismatchError
from nemo_runspec.hydra_app import to_plain
from nemotron.kit.artifacts import ModelArtifact
from nemotron.stages.training import check_model_fits, finished_run, log_model, run_dir, run_training_job

def train_pretrain(cfg: Any, *, show_progress: bool = True) -> ModelArtifact:
    tracking = setup_artifact_tracking(cfg)
    data_record = _data_record(tracking, cfg.run.data)  # before ${art:data,...} resolves against it
    config = to_plain(cfg)
    check_model_fits(config)
    directory, digest = run_dir(config, [data_record.uri])
    if (existing := finished_run(config, directory, digest)) is not None:
        return existing
    job = {
        "stage": "pretrain",
        "run_dir": str(directory),
        "model": config["model"],
        "train": config["train"],
        "optimizer": config["optimizer"],
        "data": config["data"],
        "tracking": config.get("tracking"),
        "show_progress": show_progress,
    }
    result = run_training_job(job, directory, int(config["train"]["nproc_per_node"]))
    return log_model(tracking, config, "pretrain", result, directory, digest, training_data=data_record.uri)


def _data_record(tracking, ref: str):
    record = tracking.resolve(ref)
    if record.type != "PretrainBlendsArtifact":
        raise TypeMismatchError(f"run.data={ref} is a {record.type}, pretraining needs a PretrainBlendsArtifact",
                                hint="point run.data at the output of `data prep pretrain`")
    return record


