"""Stage-1 training step: SFT of a parent model on packed data -> ModelArtifact (stage=sft).

Everything that can be wrong with the inputs is checked before a training process starts:
the types of run.model and run.data, a parent checkpoint that is incomplete, a parent whose
architecture differs from the model config (named field by field), data tokenized with a
different tokenizer than the parent saw, and packs longer than the model's sequence length.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nemo_runspec.errors import ConfigError
from nemotron.kit.model_formats import missing_checkpoint_files
from nemotron.schemas.model import architecture_of
from nemotron.schemas.steps import SFTStep
from nemotron.stages.step import Input, Received, receive
from nemotron.stages.training import train_and_log

INPUTS = (Input("model", "ModelArtifact", "a pretrain (or sft) model"),
          Input("data", "SFTDataArtifact", "the output of `data prep sft`"))


def train_sft(cfg: Any, *, show_progress: bool = True):
    step = receive(cfg, SFTStep, "SFT", INPUTS)
    parent, data = step.inputs
    _check_parent(parent, step)
    if data.fields["pack_size"] > step.typed.model.seq_length:
        raise ConfigError(f"{data.ref} packs {data.fields['pack_size']} tokens, more than the model's "
                          f"seq_length {step.typed.model.seq_length}",
                          hint="prepare the SFT data with a smaller data_prep.pack_size")
    return train_and_log(step, "sft", show_progress, parent_model=parent.uri,
                         init_checkpoint=step.typed.init.checkpoint)


def _check_parent(parent, step: Received[SFTStep]) -> None:
    checkpoint = Path(parent.path)
    missing = missing_checkpoint_files(checkpoint)
    if parent.fields.get("format") != "megatron" or missing:
        raise ConfigError(f"parent {parent.ref} checkpoint {checkpoint} is incomplete or not a Megatron checkpoint"
                          + (f" (missing {missing[0].name})" if missing else ""),
                          hint="use a model logged by `pretrain`/`sft`, or import a complete checkpoint")
    recorded = parent.metadata.get("architecture")
    if recorded:
        ours, theirs = architecture_of(step.plain["model"]), architecture_of(recorded)
        different = [f"{k}={theirs[k]!r} (config: {ours[k]!r})" for k in ours if ours[k] != theirs[k]]
        if different:
            raise ConfigError(f"parent {parent.ref} differs from the model config: {', '.join(different)}",
                              hint="choose the model= size the parent was trained with")
    parent_tokenizer = parent.metadata.get("tokenizer_sha256")
    if parent_tokenizer and parent_tokenizer != step.typed.data.tokenizer_sha256:
        raise ConfigError(f"run.data was tokenized with a different tokenizer than parent {parent.ref} was trained with",
                          hint="prepare the SFT data with the parent's tokenizer (tokenizer.path=...)")
