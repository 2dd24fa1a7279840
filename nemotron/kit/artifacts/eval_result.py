"""What an evaluation of a model measured, pinned to the model and the data it read."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from nemo_runspec.artifacts.base import Artifact
from nemotron.kit.artifacts.common import NonNegativeInt

Evaluation = Literal["loss"]


class EvalResultArtifact(Artifact):
    """One evaluation of ``model`` on a split of ``data``; its numbers are typed fields, so
    ``${art:NAME,loss}`` reads them and ``lineage --descendants`` of the model shows them."""

    evaluation: Evaluation
    model: str = Field(description="art:// reference of the evaluated model")
    data: str = Field(description="art:// reference of the data it was evaluated on")
    split: str
    weights: Literal["trained", "initial"] = Field("trained", description="initial: the untrained model (a baseline)")
    loss: float | None = Field(None, description="mean per-token cross-entropy (nats)")
    perplexity: float | None = None
    tokens: NonNegativeInt | None = None
    sequences: NonNegativeInt | None = None

    def get_input_uris(self) -> list[str]:
        return [self.model, self.data]

    def default_name(self) -> str:
        return f"EvalResultArtifact-{self.evaluation}"
