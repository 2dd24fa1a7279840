"""Stage-2 data: RL prompts with verifiable answers, split into train/val/test JSONL."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from nemo_runspec.artifacts.base import Artifact
from nemotron.kit.artifacts.common import NonNegativeInt, SourceInfo


class SplitJsonlDataArtifact(Artifact):
    train_path: Path
    val_path: Path | None = None
    test_path: Path | None = None
    train_count: NonNegativeInt
    val_count: NonNegativeInt = 0
    test_count: NonNegativeInt = 0
    sources: list[SourceInfo] = Field(default_factory=list)
    # The manifest beside the splits (counts, sha256, seed, split spec, sources) and the
    # record schema every line follows, e.g. "nemotron.rl_prompts/v1".
    manifest_path: Path | None = None
    record_schema: str | None = None

    def get_input_uris(self) -> list[str]:
        return [source.uri for source in self.sources]
