"""Stage-1 data: chat conversations tokenized, loss-masked and packed into Parquet."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from nemo_runspec.artifacts.base import Artifact
from nemotron.kit.artifacts.common import NonNegativeInt, SourceInfo, TokenizerInfo, source_and_tokenizer_uris


class PackedSplit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    num_packs: NonNegativeInt
    num_sequences: NonNegativeInt


class ChatTemplateInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    sha256: str


class SFTDataArtifact(Artifact):
    """Packed sequences of ``pack_size`` tokens, one Parquet row per pack, per split."""

    pack_size: Annotated[int, Field(ge=2)]
    num_packs: NonNegativeInt
    num_sequences: NonNegativeInt
    packing_efficiency: Annotated[float, Field(ge=0, le=100, description="percent of pack tokens used")]
    splits: dict[str, PackedSplit] = Field(default_factory=dict)
    tokenizer: TokenizerInfo
    chat_template: ChatTemplateInfo
    sources: list[SourceInfo] = Field(default_factory=list)

    def get_input_uris(self) -> list[str]:
        return source_and_tokenizer_uris(self.sources, self.tokenizer)
