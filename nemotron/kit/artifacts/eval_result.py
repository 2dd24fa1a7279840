"""What an evaluation of a model measured, pinned to the model and the data it read."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from nemo_runspec.artifacts.base import Artifact
from nemotron.kit.artifacts.common import NonNegativeInt

Evaluation = Literal["loss", "accuracy"]


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
    accuracy: float | None = Field(None, description="share of prompts whose greedy completion the first reward scores 1")
    format_rate: float | None = Field(None, description="share of greedy completions that end the turn with the "
                                                        "chat template's end-of-turn token")
    rewards: dict[str, float] | None = Field(None, description="mean of each reward function over the greedy completions")
    prompts: NonNegativeInt | None = None
    samples: NonNegativeInt | None = Field(None, description="sampled completions per prompt besides the greedy one")
    pass_at_k: float | None = Field(None, description="share of prompts with a correct one among the samples")
    sampled_accuracy: float | None = None

    def get_input_uris(self) -> list[str]:
        return [self.model, self.data]

    def default_name(self) -> str:
        return f"EvalResultArtifact-{self.evaluation}"
