"""The contract every step follows, written once.

A step receives a composed config (:func:`receive`: set up tracking, resolve to plain data,
validate against the step's schema), then :func:`run_step` owns the rest: the fingerprinted
output directory, returning the version that already holds it, logging what ``produce``
made, and the messages. A step supplies only its schema, its identity (what the output
depends on) and ``produce``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from nemo_runspec.artifacts import Artifact, ArtifactTracking, log_artifact, setup_artifact_tracking
from nemo_runspec.hydra_app import to_plain
from nemo_runspec.schema import validate, validate_known
from nemotron.stages import outputs

A = TypeVar("A", bound=Artifact)
S = TypeVar("S")


@dataclass(frozen=True)
class Received(Generic[S]):
    """What a step works from: the tracking, the resolved config (recorded as is in the
    artifact's metadata) and the same config validated (what the step reads)."""

    tracking: ArtifactTracking
    plain: dict[str, Any]
    typed: S


def receive(cfg: Any, schema: type[S], before_resolve: Callable[[ArtifactTracking], None] | None = None) -> Received[S]:
    """Tracking for ``cfg``, then ``cfg`` resolved and validated; ``before_resolve`` runs in
    between (checks of the input artifacts, so an error names the real problem rather than a
    ``${art:...}`` that does not resolve)."""
    tracking = setup_artifact_tracking(cfg)
    check_groups(schema, cfg)
    if before_resolve is not None:
        before_resolve(tracking)
    plain = to_plain(cfg)
    return Received(tracking, plain, validate(schema, plain))


def check_groups(schema: type, cfg: Any) -> None:
    """Validate each config group of ``cfg`` that resolves now, against its part of ``schema``.

    A group that reads an artifact not logged yet (``${art:...}``: a job after the one that
    logs it) or holds a ``???`` is left to :func:`receive`, which checks every rule."""
    from omegaconf import DictConfig, OmegaConf
    from pydantic import BaseModel

    for key, field in schema.model_fields.items():
        group = field.annotation
        node = OmegaConf.select(cfg, key)
        if not (isinstance(group, type) and issubclass(group, BaseModel)) or not isinstance(node, DictConfig):
            continue
        data, unknown = {}, set()
        for name in node:
            try:
                data[name] = _resolved(node, name)
            except Exception:  # noqa: BLE001 - any resolution failure: receive reports it in one line
                unknown.add(str(name))
        validate_known(group, data, unknown, key)


def _resolved(node: Any, name: Any) -> Any:
    from omegaconf import Container, OmegaConf

    value = node[name]
    return OmegaConf.to_container(value, resolve=True, throw_on_missing=True) if isinstance(value, Container) else value


@dataclass(frozen=True)
class Produced(Generic[A]):
    """What ``produce`` made: the artifact to log and the words after ``logged NAME:vN:``."""

    artifact: A
    summary: str


@dataclass(frozen=True)
class Output:
    """Where ``produce`` writes, and the fingerprint of everything it depends on."""

    directory: Path
    fingerprint: str


def run_step(tracking: ArtifactTracking, cls: type[A], name: str, *, root: str | Path, identity: Any, marker: str,
             produce: Callable[[Output], Produced[A] | None], what: str = "output") -> A | None:
    """Produce ``name``'s next version in ``<root>/<name>/<fingerprint of identity>`` and log
    it, unless a version already holds that directory (its ``marker`` file still there):
    then that version. ``produce`` returns None when it made only part of the output (a slice
    of a multi-job prep): nothing is logged."""
    directory, digest = outputs.output_dir(root, name, identity)
    existing = outputs.already_logged(tracking, cls, name, directory, digest, marker)
    if existing is not None:
        print(f"{existing.name}:v{existing.version} already holds this {what} ({directory}); nothing to do")
        return existing
    produced = produce(Output(directory, digest))
    if produced is None:
        return None
    artifact = produced.artifact
    artifact.metadata["fingerprint"] = digest
    log_artifact(artifact, tracking, name=name)
    print(f"logged {artifact.name}:v{artifact.version}: {produced.summary} -> {artifact.path}")
    return artifact


def write_resolved_config(directory: Path, config: dict[str, Any]) -> None:
    """The step's resolved config beside its output, as YAML a person can read."""
    from omegaconf import OmegaConf

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "resolved_config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(config)), encoding="utf-8")
