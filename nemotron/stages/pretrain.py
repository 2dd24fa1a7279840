"""Stage-0 training step: a composed config -> a logged ModelArtifact (stage=pretrain).

The run directory's fingerprint covers the model, schedule, optimizer and the pinned data
version, so the same command after a crash finds its checkpoints and resumes.
"""

from __future__ import annotations

from typing import Any

from nemo_runspec.artifacts import setup_artifact_tracking
from nemo_runspec.hydra_app import to_plain
from nemotron.stages.training import train_and_log, typed_input

def train_pretrain(cfg: Any, *, show_progress: bool = True):
    tracking = setup_artifact_tracking(cfg)
    # Checked before ${art:data,...} resolves against it, so the error names the real problem.
    data = typed_input(tracking, "data", cfg.run.data, "PretrainBlendsArtifact", "pretraining",
                       "the output of `data prep pretrain`")
    return train_and_log(tracking, to_plain(cfg), "pretrain", [data], show_progress)
