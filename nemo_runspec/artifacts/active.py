"""The process's active artifact tracking: the fallback for callers that hold none.

``Artifact.from_uri``, the ``${art:...}`` resolver and ``log_artifact`` take a tracking
explicitly; given none, they ask :func:`current_tracking`. That is the tracking of the last
``setup_artifact_tracking(config)``, else a default set up from the environment on first use
(``NEMOTRON_ARTIFACTS_ROOT``, env.toml's ``[artifacts]``, else ``./artifacts``). It stays the
active one afterwards, so that its resolution cache pins ``latest`` for the rest of the run.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from nemo_runspec.artifacts.tracking import ArtifactTracking, PublishableArtifact, tracking_from_config

A = TypeVar("A", bound=PublishableArtifact)

_active: ArtifactTracking | None = None


def setup_artifact_tracking(config: Any = None) -> ArtifactTracking:
    """Build the tracking described by ``config`` and make it the active one.

    ``config`` may be None, a full run config with an ``artifacts:`` section, or that section
    itself (a mapping or OmegaConf node with ``root`` and ``backends``).
    """
    global _active
    _active = tracking_from_config(config)
    return _active


def current_tracking() -> ArtifactTracking:
    """The active tracking, set up from the environment on first use."""
    return _active if _active is not None else setup_artifact_tracking()


def reset_artifact_tracking() -> None:
    """Forget the active tracking: the next lookup sets one up from the environment again
    (a test's fresh start, or a process that changed NEMOTRON_ARTIFACTS_ROOT or env.toml)."""
    global _active
    _active = None


def log_artifact(
    artifact: A,
    tracking: ArtifactTracking | None = None,
    name: str | None = None,
    *,
    inputs: Iterable[str] = (),
    aliases: Iterable[str] = (),
) -> A:
    """Publish ``artifact`` as the next version of ``name``; its inputs are pinned to versions.

    Fills in ``artifact.name`` and ``artifact.version`` and returns the artifact.
    """
    tracking = tracking or current_tracking()
    tracking.publish(artifact, name or artifact.name or artifact.default_name(), inputs, aliases)
    return artifact
