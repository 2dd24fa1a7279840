"""The ``${art:NAME,FIELD}`` OmegaConf resolver.

NAME names a reference under ``run:`` (``run.data: my-data:latest``); FIELD is ``path``,
``version``, ``name``, ``type``, ``ref``, a typed field or a metadata key, nested with dots.
The reference is read from the config being resolved, so a command-line override of
``run.data`` is what resolves. Records come from the tracking passed to :func:`resolve_art`,
else (as always through OmegaConf, which passes none) the process's active tracking, whose
cache keeps a reference on one version for the whole run.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from nemo_runspec.errors import ConfigError

if TYPE_CHECKING:
    from nemo_runspec.artifacts.tracking import ArtifactTracking

RESOLVER = "art"


def register_art_resolver() -> None:
    """Register ``${art:...}`` with OmegaConf (and so with Hydra); safe to call repeatedly."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, resolve_art, use_cache=False)


def resolve_art(name: str, field: str, *, _root_: DictConfig, tracking: ArtifactTracking | None = None) -> Any:
    from nemo_runspec.artifacts.active import current_tracking
    from nemo_runspec.registry.record import record_field

    run = _root_.get("run") if "run" in _root_ else None
    if run is None or name not in run:
        known = ", ".join(sorted(run.keys())) if run is not None else "no run: section"
        raise ConfigError(
            f"${{art:{name},{field}}}: run.{name} is not set (run has: {known})",
            hint=f"add run.{name}=NAME:VERSION on the command line or under run: in the config",
        )
    ref = run[name]
    if not isinstance(ref, str) or not ref:
        raise ConfigError(f"${{art:{name},{field}}}: run.{name} must be an artifact reference, got {ref!r}")
    record = (tracking or current_tracking()).resolve(ref)
    try:
        value = record_field(record, field)
    except KeyError as err:
        raise ConfigError(f"${{art:{name},{field}}}: {err.args[0]}") from None
    if isinstance(value, PurePath):
        return str(value)
    return value
