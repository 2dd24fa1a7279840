"""Records shared by several artifact types: tokenizer identity and source descriptions."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

NonNegativeInt = Annotated[int, Field(ge=0)]


class TokenizerInfo(BaseModel):
    """Which tokenizer produced token ids: where it was read from and a digest of its files."""

    model_config = ConfigDict(extra="forbid")

    path: str
    sha256: str
    vocab_size: Annotated[int, Field(ge=1)]
    name: str | None = None


class SourceInfo(BaseModel):
    """One input data set of a data prep, with what identifies its exact content."""

    model_config = ConfigDict(extra="forbid")

    name: str
    uri: str
    weight: Annotated[float, Field(ge=0)] = 1.0
    split: str | None = None
    num_bytes: NonNegativeInt | None = None
    sha256: str | None = None


def source_and_tokenizer_uris(sources: list[SourceInfo], tokenizer: TokenizerInfo | None) -> list[str]:
    uris = [source.uri for source in sources]
    if tokenizer is not None:
        uris.append(tokenizer.path)
    return uris
