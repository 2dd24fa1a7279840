"""Typed artifacts and their tracking: the public artifact API of the run infrastructure."""

from nemo_runspec.artifacts.active import (
    current_tracking,
    log_artifact,
    reset_artifact_tracking,
    setup_artifact_tracking,
    using_tracking,
)
from nemo_runspec.artifacts.base import Artifact, artifact_class
from nemo_runspec.artifacts.tracking import ArtifactTracking

__all__ = [
    "Artifact",
    "ArtifactTracking",
    "artifact_class",
    "current_tracking",
    "log_artifact",
    "reset_artifact_tracking",
    "setup_artifact_tracking",
    "using_tracking",
]
