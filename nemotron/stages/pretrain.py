"""Stage-0 training step: a composed config -> a logged ModelArtifact (stage=pretrain).

The run directory's fingerprint covers the model, schedule, optimizer and the pinned data
version, so the same command after a crash finds its checkpoints and resumes.
"""

from __future__ import annotations

from typing import Any

from nemotron.data.indexed_dataset import check_shards
from nemotron.schemas.steps import PretrainStep
from nemotron.stages.step import Input, receive
from nemotron.stages.training import train_and_log

INPUTS = (Input("data", "PretrainBlendsArtifact", "the output of `data prep pretrain`"),)


def train_pretrain(cfg: Any, *, show_progress: bool = True):
    step = receive(cfg, PretrainStep, "pretraining", INPUTS)
    check_shards(step.typed.data.blend_path)  # here, not in each training process
    return train_and_log(step, "pretrain", show_progress)
