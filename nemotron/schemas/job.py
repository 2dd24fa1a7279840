"""The job file a training process reads (``<run_dir>/job.json``): what the step validated,
plus where the run goes. The process validates it again, so a job file edited by hand (or
written by an older version) fails in one line naming the key, not deep in Megatron."""

from __future__ import annotations

from typing import Any, Literal

from nemo_runspec.groups import TrackingConfig
from nemo_runspec.schema import GroupSchema
from nemotron.schemas.model import ModelConfig
from nemotron.schemas.optimizer import OptimizerConfig
from nemotron.schemas.train import TrainConfig


class TrainingJob(GroupSchema):
    stage: Literal["pretrain", "sft"]
    run_dir: str
    init_checkpoint: str | None = None
    model: ModelConfig
    train: TrainConfig
    optimizer: OptimizerConfig
    data: dict[str, Any]  # the stage's inputs (PretrainInputs / SFTInputs of nemotron.schemas.steps)
    tracking: TrackingConfig | None = None
    show_progress: bool = True
    debug: bool = False  # a failure shows its traceback (nemo_runspec.errors.run_job_file)

    def sections(self) -> dict[str, Any]:
        """The job as given (no defaults filled in): what a metrics sink records as its config."""
        return self.model_dump(exclude_unset=True)
