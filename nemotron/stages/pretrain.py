"""Stage-0 training step: a composed config -> a logged ModelArtifact (stage=pretrain).

The run directory's fingerprint covers the model, schedule, optimizer and the pinned data
version, so the same command after a crash finds its checkpoints and resumes.
"""

from __future__ import annotations

from typing import Any

from nemotron.schemas.steps import PretrainStep
from nemotron.stages.step import receive
from nemotron.stages.training import train_and_log, typed_input


def train_pretrain(cfg: Any, *, show_progress: bool = True):
    inputs = []

    def check_inputs(tracking) -> None:
        # Before ${art:data,...} resolves against it, so the error names the real problem.
        inputs.append(typed_input(tracking, "data", cfg.run.data, "PretrainBlendsArtifact", "pretraining",
                                  "the output of `data prep pretrain`"))

    step = receive(cfg, PretrainStep, check_inputs)
    return train_and_log(step, "pretrain", inputs, show_progress)
