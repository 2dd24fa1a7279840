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
from nemo_runspec.errors import ConfigError
from nemo_runspec.hydra_app import to_plain
from nemotron.stages.training import train_and_log, typed_input
from nemotron.train.checkpoint import TRAINER_FILE
from nemotron.train.gpt import architecture_of


def train_sft(cfg: Any, *, show_progress: bool = True):
    tracking = setup_artifact_tracking(cfg)
    parent = typed_input(tracking, "model", cfg.run.model, "ModelArtifact", "SFT", "a pretrain (or sft) model")
    data = typed_input(tracking, "data", cfg.run.data, "SFTDataArtifact", "SFT", "the output of `data prep sft`")
    config = to_plain(cfg)
    _check_parent(parent, config)
    if data.fields["pack_size"] > int(config["model"]["seq_length"]):
        raise ConfigError(f"{data.ref} packs {data.fields['pack_size']} tokens, more than the model's "
                          f"seq_length {config['model']['seq_length']}",
                          hint="prepare the SFT data with a smaller data_prep.pack_size")
    return train_and_log(tracking, config, "sft", [parent, data], show_progress,
                         init_checkpoint=config["init"]["checkpoint"], parent_model=parent.uri)


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
