"""The process's active artifact tracking: the fallback for callers that hold none.

``Artifact.from_uri``, the ``${art:...}`` resolver and ``log_artifact`` take a tracking
explicitly; given none, they ask :func:`current_tracking`. That is the tracking of the last
``setup_artifact_tracking(config)``, else a default set up from the environment on first use
(``NEMOTRON_ARTIFACTS_ROOT``, env.toml's ``[artifacts]``, else ``./artifacts``). It stays the
active one afterwards, so that its resolution cache pins ``latest`` for the rest of the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from nemo_runspec.artifacts.tracking import ArtifactTracking, PublishableArtifact, tracking_from_config

A = TypeVar("A", bound=PublishableArtifact)

_active: ArtifactTracking | None = None


_pinned: ArtifactTracking | None = None


def setup_artifact_tracking(config: Any = None) -> ArtifactTracking:
    """Build the tracking described by ``config`` and make it the active one.

    ``config`` may be None, a full run config with an ``artifacts:`` section, or that section
    itself (a mapping or OmegaConf node with ``root`` and ``backends``). Inside
    :func:`using_tracking` the config is not read: that tracking is the answer.
    """
    global _active
    _active = _pinned if _pinned is not None else tracking_from_config(config)
    return _active


@contextmanager
def using_tracking(tracking: ArtifactTracking) -> Iterator[ArtifactTracking]:
    """Run code that sets up its own tracking from its config (a step) against ``tracking``
    instead: a reproduction publishes into a scratch registry and reads pinned inputs."""
    global _pinned, _active
    before = _pinned, _active
    _pinned = _active = tracking
    try:
        yield tracking
    finally:
        _pinned, _active = before


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
    owned_dir: str | os.PathLike[str] | None = None,
) -> A:
    """Publish ``artifact`` as the next version of ``name``; its inputs are pinned to versions.

    Fills in ``artifact.name`` and ``artifact.version`` and returns the artifact. ``owned_dir``:
    a directory made for this version alone, which ``nemotron artifact gc`` may delete.
    """
    tracking = tracking or current_tracking()
    if name is None:
        name = artifact.name or artifact.default_name()
    tracking.publish(artifact, name, inputs, aliases, owned_dir=owned_dir)  # "" is refused there
    return artifact
