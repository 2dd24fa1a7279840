"""Stage-1 training step: SFT of a parent model on packed data -> ModelArtifact (stage=sft).

Everything that can be wrong with the inputs is checked before a training process starts:
the types of run.model and run.data, a parent checkpoint that is incomplete, a parent whose
architecture differs from the model config (named field by field), data tokenized with a
different tokenizer than the parent saw, and packs longer than the model's sequence length.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nemo_runspec.artifacts import setup_artifact_tracking
from nemo_runspec.errors import ConfigError, TypeMismatchError
from nemo_runspec.hydra_app import to_plain
from nemotron.stages.training import check_model_fits, finished_run, log_model, run_dir, run_training_job
from nemotron.train.checkpoint import TRAINER_FILE
from nemotron.train.gpt import architecture_of


def train_sft(cfg: Any, *, show_progress: bool = True):
    tracking = setup_artifact_tracking(cfg)
    parent = _typed(tracking, "model", cfg.run.model, "ModelArtifact", "a pretrain (or sft) model")
    data = _typed(tracking, "data", cfg.run.data, "SFTDataArtifact", "the output of `data prep sft`")
    config = to_plain(cfg)
    _check_parent(parent, config)
    if data.fields["pack_size"] > int(config["model"]["seq_length"]):
        raise ConfigError(f"{data.ref} packs {data.fields['pack_size']} tokens, more than the model's "
                          f"seq_length {config['model']['seq_length']}",
                          hint="prepare the SFT data with a smaller data_prep.pack_size")
    check_model_fits(config)
    directory, digest = run_dir(config, [parent.uri, data.uri])
    if (existing := finished_run(config, directory, digest)) is not None:
        return existing
    job = {
        "stage": "sft",
        "run_dir": str(directory),
        "init_checkpoint": config["init"]["checkpoint"],
        "model": config["model"],
        "train": config["train"],
        "optimizer": config["optimizer"],
        "data": config["data"],
        "tracking": config.get("tracking"),
        "show_progress": show_progress,
    }
    result = run_training_job(job, directory, int(config["train"]["nproc_per_node"]))
    return log_model(tracking, config, "sft", result, directory, digest, training_data=data.uri, parent_model=parent.uri)


def _typed(tracking, key: str, ref: str, type_name: str, what: str):
    record = tracking.resolve(ref)
    if record.type != type_name:
        raise TypeMismatchError(f"run.{key}={ref} is a {record.type}, SFT needs a {type_name}",
                                hint=f"point run.{key} at {what}")
    return record


def _check_parent(parent, config: dict[str, Any]) -> None:
    checkpoint = Path(parent.path)
    missing = [p for p in (checkpoint / TRAINER_FILE, checkpoint / "model" / "metadata.json") if not p.is_file()]
    if parent.fields.get("format") != "megatron" or missing:
        raise ConfigError(f"parent {parent.ref} checkpoint {checkpoint} is incomplete or not a Megatron checkpoint"
                          + (f" (missing {missing[0].name})" if missing else ""),
                          hint="use a model logged by `pretrain`/`sft`, or import a complete checkpoint")
    recorded = parent.metadata.get("architecture")
    if recorded:
        ours, theirs = architecture_of(config["model"]), architecture_of(recorded)
        different = [f"{k}={theirs[k]!r} (config: {ours[k]!r})" for k in ours if ours[k] != theirs[k]]
        if different:
            raise ConfigError(f"parent {parent.ref} differs from the model config: {', '.join(different)}",
                              hint="choose the model= size the parent was trained with")
    parent_tokenizer = parent.metadata.get("tokenizer_sha256")
    if parent_tokenizer and parent_tokenizer != config["data"]["tokenizer_sha256"]:
        raise ConfigError(f"run.data was tokenized with a different tokenizer than parent {parent.ref} was trained with",
                          hint="prepare the SFT data with the parent's tokenizer (tokenizer.path=...)")
