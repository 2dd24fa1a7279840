"""The pipeline's domain kit: the four artifact types, the stage each belongs to, and the
torch-free facts about model formats (checkpoint layout, what exports to Hugging Face)."""

from nemotron.kit.artifacts import (
    Artifact,
    ModelArtifact,
    PretrainBlendsArtifact,
    SFTDataArtifact,
    SplitJsonlDataArtifact,
)

__all__ = ["Artifact", "ModelArtifact", "PretrainBlendsArtifact", "SFTDataArtifact", "SplitJsonlDataArtifact"]
