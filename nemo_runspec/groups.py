"""The run-infrastructure config groups: ``artifacts`` (registry), ``tracking`` (metrics sink)
and ``launcher`` (where a command runs)."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from nemo_runspec.schema import GroupSchema


class ArtifactsConfig(GroupSchema):
    root: str | None = None  # null: NEMOTRON_ARTIFACTS_ROOT, env.toml's [artifacts] root, ./artifacts
    backends: list[str] | None = None  # manifest, wandb, ...; null: env.toml's [artifacts] backends
    digests: bool = True  # a manifest of every version's files (path, size, digest) at publish
    verify_inputs: bool = False  # digest every file of each input before a step starts, not only the touched ones


class TrackingConfig(GroupSchema):
    backend: Literal["none", "wandb"] = "none"
    project: str | None = None
    entity: str | None = None
    mode: Literal["online", "offline", "disabled"] | None = None
    dir: str | None = None


class LauncherConfig(GroupSchema):
    executor: Literal["local", "slurm"] = "local"
    profile: str | None = None  # an env.toml profile; launcher=slurm needs one
    wait: bool = True

    @model_validator(mode="after")
    def _profile(self) -> LauncherConfig:
        if self.executor == "slurm" and not self.profile:
            raise ValueError("launcher=slurm needs launcher.profile=NAME (an env.toml profile)")
        return self
