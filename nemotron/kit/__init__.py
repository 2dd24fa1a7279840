"""The pipeline's domain kit: artifact types (and, in later layers, data and model pieces)."""

from nemotron.kit.artifacts import (
    Artifact,
    ModelArtifact,
    PretrainBlendsArtifact,
    SFTDataArtifact,
    SplitJsonlDataArtifact,
)

__all__ = ["Artifact", "ModelArtifact", "PretrainBlendsArtifact", "SFTDataArtifact", "SplitJsonlDataArtifact"]
