"""Model checkpoints of every stage, with the parent model and data they were trained from."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from nemo_runspec.artifacts.base import Artifact
from nemotron.kit.artifacts.common import NonNegativeInt

Stage = Literal["pretrain", "sft", "rl"]
CheckpointFormat = Literal["megatron", "hf"]


class ModelArtifact(Artifact):
    """A checkpoint: Megatron-Core distributed (``megatron``) or Hugging Face (``hf``)."""

    stage: Stage
    step: NonNegativeInt
    format: CheckpointFormat = "megatron"
    final_loss: float | None = None
    tokens_seen: NonNegativeInt | None = None
    parent_model: str | None = Field(None, description="art:// reference of the model this one started from")
    training_data: str | None = Field(None, description="art:// reference of the data it was trained on")

    def get_input_uris(self) -> list[str]:
        return [uri for uri in (self.parent_model, self.training_data) if uri]

    def default_name(self) -> str:
        return f"ModelArtifact-{self.stage}"
