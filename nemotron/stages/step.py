"""The contract every step follows, written once.

A step receives a composed config (:func:`receive`: set up tracking, check each config group,
check the type of each input artifact, resolve to plain data, validate against the step's
schema), then :func:`run_step` owns the rest: the fingerprinted output directory, returning
the version that already holds it, logging what ``produce`` made, and the messages. A step
supplies only its schema, its inputs, its identity (what the output depends on) and
``produce``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from omegaconf import Container, DictConfig, OmegaConf
from pydantic import BaseModel

from nemo_runspec import contents, integrity
from nemo_runspec.artifacts import Artifact, ArtifactTracking, log_artifact, setup_artifact_tracking
from nemo_runspec.errors import ConfigError, TypeMismatchError
from nemo_runspec.hydra_app import to_plain
from nemo_runspec.refs import validate_name
from nemo_runspec.registry.record import ArtifactRecord
from nemo_runspec.schema import validate, validate_known
from nemotron.stages import outputs

A = TypeVar("A", bound=Artifact)
S = TypeVar("S")


@dataclass(frozen=True)
class Input:
    """An artifact the step reads: ``run.<key>`` must name a ``type_name``."""

    key: str
    type_name: str
    what: str  # what to point it at, for the hint


@dataclass(frozen=True)
class Received(Generic[S]):
    """What a step works from: the tracking, its input records (pinned, in the order declared),
    the resolved config (recorded as is in the artifact's metadata) and the same config
    validated (what the step reads)."""

    tracking: ArtifactTracking
    inputs: tuple[ArtifactRecord, ...]
    plain: dict[str, Any]
    typed: S


def receive(cfg: Any, schema: type[S], step: str = "", inputs: tuple[Input, ...] = ()) -> Received[S]:
    """Tracking for ``cfg``, its groups that resolve checked, its ``inputs`` checked for type
    (before ``${art:...}`` resolves against them, so an error names the real problem), then
    ``cfg`` resolved and validated against ``schema``."""
    tracking = setup_artifact_tracking(cfg)
    check_groups(schema, cfg)
    records = tuple(typed_input(tracking, i.key, OmegaConf.select(cfg, f"run.{i.key}"), i.type_name, step, i.what)
                    for i in inputs)
    full = bool(OmegaConf.select(cfg, "artifacts.verify_inputs", default=False))
    for record in records:
        integrity.require_unchanged(record, contents.FULL if full else contents.QUICK)
    plain = to_plain(cfg)
    return Received(tracking, records, plain, validate(schema, plain))


def typed_input(tracking: ArtifactTracking, key: str, ref: str | None, type_name: str, step: str, what: str) -> ArtifactRecord:
    """The record ``run.<key>`` names, if it is a ``type_name``; a one-line error otherwise."""
    if not ref:
        raise ConfigError(f"run.{key} is not set; {step} reads a {type_name}", hint=f"point run.{key} at {what}")
    record = tracking.resolve(ref)
    if record.type != type_name:
        raise TypeMismatchError(f"run.{key}={ref} is a {record.type}, {step} needs a {type_name}",
                                hint=f"point run.{key} at {what}")
    return record


def check_name_free(tracking: ArtifactTracking, name: str, type_name: str) -> str:
    """``name`` (validated), once it is known to be free for a ``type_name``: a step that logs
    under a user's ``--name`` checks it before any work, so a wrong name fails at once."""
    bound = tracking.registry.bound_type(validate_name(name))
    if bound not in (None, type_name):
        raise TypeMismatchError(f"artifact name {name!r} is bound to {bound}, not {type_name}", hint="choose another --name")
    return name


def check_groups(schema: type, cfg: Any) -> None:
    """Validate each config group of ``cfg`` that resolves now, against its part of ``schema``.

    A group that reads an artifact not logged yet (``${art:...}``: a job after the one that
    logs it) or holds a ``???`` is left to :func:`receive`, which checks every rule."""
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
    log_artifact(artifact, tracking, name=name, owned_dir=directory)
    print(f"logged {artifact.name}:v{artifact.version}: {produced.summary} -> {artifact.path}")
    return artifact


def write_resolved_config(directory: Path, config: dict[str, Any]) -> None:
    """The step's resolved config beside its output, as YAML a person can read."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "resolved_config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(config)), encoding="utf-8")
