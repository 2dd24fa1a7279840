"""The artifact base class, re-exported where recipes and users import it from."""

from nemo_runspec.artifacts.base import Artifact

__all__ = ["Artifact"]
