"""Stage-0 data: tokenized Megatron bin/idx shards and the blend.json that weights them."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from nemo_runspec.artifacts.base import Artifact
from nemotron.kit.artifacts.common import NonNegativeInt, SourceInfo, TokenizerInfo, source_and_tokenizer_uris


class PretrainBlendsArtifact(Artifact):
    """Megatron indexed datasets plus a per-split blend (``train``/``valid``/``test``)."""

    blend_path: Path = Field(description="blend.json with per-split data_path lists")
    total_tokens: NonNegativeInt
    total_sequences: NonNegativeInt
    num_shards: NonNegativeInt
    split_tokens: dict[str, NonNegativeInt] = Field(default_factory=dict)
    split_sequences: dict[str, NonNegativeInt] = Field(default_factory=dict)
    tokenizer: TokenizerInfo
    sources: list[SourceInfo] = Field(default_factory=list)

    def get_input_uris(self) -> list[str]:
        return source_and_tokenizer_uris(self.sources, self.tokenizer)
