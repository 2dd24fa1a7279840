"""Weights & Biases beside the manifest: a mirror of published versions, a fallback resolver.

The manifest stays the registry that allocates versions. With ``backends = ["manifest",
"wandb"]`` every version it publishes is also logged as a W&B artifact (:meth:`mirror`), and a
reference the manifest does not know is looked up in W&B (:meth:`resolve`, online only). How a
record maps to a W&B artifact is in ``wandb_mapping``; settings, secrets and wandb's files in
``wandb_settings``.

Each published version is logged by a short run of its own (job type ``publish-artifact``)
that uses the inputs and logs the output, so W&B's run-centred lineage graph reads exactly as
ours: inputs -> run -> output. When the process already has an active W&B run in the same
project (a user's own ``wandb.init``), the artifact is logged there instead.

A W&B failure while mirroring is a warning, never an error: the manifest has the version.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nemo_runspec.errors import ArtifactNotFoundError, NemotronError
from nemo_runspec.refs import LATEST, ArtifactRef
from nemo_runspec.registry.backend import ArtifactBackend
from nemo_runspec.registry.manifest import ManifestRegistry
from nemo_runspec.registry.record import ArtifactRecord
from nemo_runspec.registry.wandb_mapping import (
    DATA_ENTRY,
    METADATA_FILE,
    is_version_alias,
    record_from_wandb,
    reference_uri,
    version_alias,
    wandb_metadata,
)
from nemo_runspec.registry.wandb_settings import (
    WandbSettings,
    check_installed,
    import_wandb,
    prepare_dirs,
    run_settings,
    wandb_settings,
)

PUBLISH_JOB_TYPE = "publish-artifact"


class WandbError(NemotronError):
    """W&B could not be reached or refused a request (login, network)."""

    default_hint = ("log in with `wandb login` (or set WANDB_API_KEY in the environment), or set "
                    "WANDB_MODE=offline to keep W&B out of resolution")


class WandbBackend(ArtifactBackend):
    """A secondary backend: mirrors published versions into W&B, resolves names from it."""

    name = "wandb"

    def __init__(self, settings: WandbSettings, manifest: ManifestRegistry | None = None):
        self.settings = settings
        self.manifest = manifest          # where our named aliases are read at mirror time
        self._api: Any = None
        self._resolved: dict[str, ArtifactRecord] = {}
        self._wandb_paths: dict[str, str] = {}   # our uri -> W&B path, for inputs found in W&B

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> WandbBackend:
        """From the merged ``[artifacts]`` / ``artifacts:`` settings (``root``, ``wandb``)."""
        settings = wandb_settings(config.get("wandb"), where="artifacts.wandb")
        if settings.mode != "disabled":
            check_installed("artifacts.backends=[..., wandb]")
        root = config.get("root")
        return cls(settings, ManifestRegistry(root) if root else None)

    def __repr__(self) -> str:
        return f"WandbBackend({self.settings.artifact_path('*', '*')!r}, mode={self.settings.mode})"

    def publish(self, draft: ArtifactRecord) -> ArtifactRecord:
        raise NotImplementedError("W&B is a secondary backend: the manifest allocates versions")

    # -- mirror -----------------------------------------------------------------------------

    def mirror(self, record: ArtifactRecord, inputs: list[ArtifactRecord]) -> None:
        if self.settings.mode == "disabled":
            return
        wandb = import_wandb()
        try:
            self._log(wandb, record, inputs)
        except (wandb.errors.Error, OSError, ValueError) as err:
            # The version is published in the manifest already; a W&B outage (or a reference
            # W&B cannot take) must not fail the job that made it.
            _warn(f"W&B did not record {record.ref}: {_one_line(err)} (the manifest has it)")

    def _log(self, wandb, record: ArtifactRecord, inputs: list[ArtifactRecord]) -> None:
        # First: new_file below already writes a staging copy into WANDB_DATA_DIR.
        directory = prepare_dirs(self.settings.dir or Path(os.environ.get("WANDB_DIR") or Path.cwd()))
        artifact = wandb.Artifact(record.name, type=record.type, metadata=wandb_metadata(record))
        with artifact.new_file(METADATA_FILE, mode="w", encoding="utf-8") as handle:
            handle.write(record.to_json())
        uri = reference_uri(record.path)
        if not uri.startswith("file://") or os.path.exists(record.path):  # W&B refuses a missing file
            # checksum=False: a directory is listed, never read (checkpoints are large). The
            # version's identity is still unique: metadata.json differs between versions.
            artifact.add_reference(uri, name=DATA_ENTRY, checksum=False)
        aliases = [LATEST, version_alias(record.version), *self._named_aliases(record)]
        run, owned = self._run_for(wandb, record, directory)
        try:
            if not (run.offline or run.disabled):  # use_artifact raises offline
                for source in inputs:
                    self._use(run, source)
            run.log_artifact(artifact, aliases=aliases)
        finally:
            if owned:
                run.finish()

    def mirror_alias(self, record: ArtifactRecord, alias: str) -> None:
        """Move ``alias`` to the W&B version of ``record`` (W&B keeps an alias on one version of
        a collection, so adding it moves it). Offline there is no W&B version to move it to."""
        if self.settings.mode == "disabled":
            return
        if not _sendable(alias, record):
            return
        if not self.settings.online:
            _warn(f"alias {alias!r} -> {record.ref} is in the manifest only: W&B is {self.settings.mode} "
                  "(run `nemotron artifact alias` again online to move it in W&B)")
            return
        wandb = import_wandb()
        try:
            artifact = self._get(record.name, version_alias(record.version))
            if artifact is None:
                _warn(f"alias {alias!r} is in the manifest only: W&B project {self.settings.project_path} "
                      f"has no {record.name}:{version_alias(record.version)}")
                return
            if alias not in artifact.aliases:
                artifact.aliases = [*artifact.aliases, alias]
                artifact.save()
        except (WandbError, wandb.errors.Error, OSError, ValueError) as err:
            _warn(f"W&B did not move alias {alias!r} to {record.ref}: {_one_line(err)} (the manifest has it)")

    def _named_aliases(self, record: ArtifactRecord) -> list[str]:
        if self.manifest is None:
            return []
        return [a for a, v in self.manifest.aliases(record.name).items() if v == record.version and _sendable(a, record)]

    def _run_for(self, wandb, record: ArtifactRecord, directory: Path) -> tuple[Any, bool]:
        """The active run of the process when it logs to our project, else a run of our own."""
        active = wandb.run
        if active is not None and active.project == self.settings.project and (
                self.settings.entity in (None, active.entity)):
            return active, False
        run = wandb.init(
            project=self.settings.project,
            entity=self.settings.entity,
            dir=str(directory),
            mode=self.settings.mode,
            job_type=PUBLISH_JOB_TYPE,
            name=f"publish {record.ref}",
            config={"artifact": record.uri, "inputs": record.inputs},
            settings=run_settings(wandb, x_disable_stats=True),  # a run of a second: no system stats
        )
        return run, True

    def _use(self, run: Any, source: ArtifactRecord) -> None:
        path = self._wandb_paths.get(source.uri) or self.settings.artifact_path(
            source.name, version_alias(source.version))
        try:
            run.use_artifact(path)
        except Exception as err:  # noqa: BLE001 - wandb raises ValueError, CommError, ...
            _warn(f"W&B lineage of this version lacks {source.ref} ({path}: {_one_line(err)}); the manifest has it")

    # -- resolve ----------------------------------------------------------------------------

    def resolve(self, ref: ArtifactRef) -> ArtifactRecord:
        key = str(ref)
        if key in self._resolved:
            return self._resolved[key]
        if not self.settings.online:
            raise ArtifactNotFoundError(f"{ref} was not looked up in W&B (mode {self.settings.mode})")
        record = self._fetch(ref)
        self._resolved[key] = self._resolved[record.ref] = record
        return record

    def _fetch(self, ref: ArtifactRef) -> ArtifactRecord:
        if ref.version is None:  # latest or a named alias: the same alias in W&B
            selectors = [ref.selector]
        else:  # ours as logged by nemotron, else W&B's own v(N-1) when that is not one of ours
            selectors = [version_alias(ref.version), f"v{ref.version - 1}"]
        for selector in selectors:
            artifact = self._get(ref.name, selector)
            if artifact is None:
                continue
            pinned = self.settings.artifact_path(ref.name, artifact.version)  # W&B's vK: never moves
            record = record_from_wandb(artifact, ref.name, pinned)
            if ref.version is not None and record.version != ref.version:
                continue
            self._wandb_paths[record.uri] = pinned
            return record
        raise ArtifactNotFoundError(f"no artifact {ref} in W&B project {self.settings.project_path}")

    def _get(self, name: str, selector: str) -> Any | None:
        """The W&B artifact ``name:selector`` of our project, None when there is none."""
        wandb = import_wandb()
        path = self.settings.artifact_path(name, selector)
        try:
            return self._client(wandb).artifact(path)
        except wandb.errors.CommError as err:
            # The public API reports a missing project/artifact as a ValueError wrapped in
            # CommError; anything else is the network or the server.
            if isinstance(getattr(err, "exc", None), ValueError) or "not found" in str(err).lower():
                return None
            raise WandbError(f"W&B lookup of {path} failed: {_one_line(err)}") from None

    def _client(self, wandb) -> Any:
        if self._api is None:
            overrides = {k: v for k, v in (("project", self.settings.project), ("entity", self.settings.entity)) if v}
            try:
                self._api = wandb.Api(overrides=overrides)
            except wandb.errors.Error as err:
                raise WandbError(f"cannot use the W&B API: {_one_line(err)}") from None
        return self._api


def _sendable(alias: str, record: ArtifactRecord) -> bool:
    if is_version_alias(alias):
        _warn(f"alias {alias!r} of {record.ref} is not sent to W&B: it would shadow our version aliases")
        return False
    return True


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)
