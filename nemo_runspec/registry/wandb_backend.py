"""Weights & Biases beside the manifest: artifact mirror, fallback resolution, metrics sink.

The manifest stays the registry that allocates versions. With ``backends = ["manifest",
"wandb"]`` every version it publishes is also logged as a W&B artifact (:meth:`mirror`), and a
reference the manifest does not know is looked up in W&B (:meth:`resolve`, online only).
Training metrics go to a W&B run through :class:`WandbMetricsRun` (``tracking=wandb``).

One record of ours is one W&B artifact version::

    ours                                W&B
    record.name                         artifact name (both allow A-Z a-z 0-9 . _ -)
    record.type (the class name)        artifact type
    record.fields (typed fields)        artifact.metadata, top level, so the W&B UI shows them
    version, ref, producer,             artifact.metadata["nemotron"]: W&B numbers the versions
      code_version, path, inputs,         of a name itself (from v0, per project), so our
      created_at, type_module, metadata   numbering travels beside its own
    vN                                  alias "nemotron-vN" (W&B reserves "vN" for its numbers)
    latest, named aliases               the same aliases
    the whole record as JSON            file metadata.json, uploaded (it is small)
    record.path (the data)              reference entries under "data/": file:// or s3:// URIs,
                                          never uploaded
    record.inputs                       run.use_artifact(input) in the run that logs it, online
                                          only (offline W&B cannot; the manifest keeps lineage)

Each published version is logged by a short run of its own (job type ``publish-artifact``)
that uses the inputs and logs the output, so W&B's run-centred lineage graph reads exactly as
ours: inputs -> run -> output. When the process already has an active W&B run in the same
project (a user's own ``wandb.init``), the artifact is logged there instead.

Reading back, a W&B artifact becomes an ``ArtifactRecord``: type from ``artifact.type``, fields
from its metadata, path from its reference entries (else the metadata); an artifact that
nemotron did not log gets version = W&B's number + 1 and no inputs, so ``vN`` of such a name
means W&B's ``v(N-1)``.

Settings: project and entity come from the section given (``artifacts.wandb`` or ``tracking``),
then env.toml's ``[wandb]``, then ``WANDB_PROJECT`` / ``WANDB_ENTITY``; the mode from
``WANDB_MODE``, then ``mode`` in those sections, else online. ``disabled`` does nothing at all.

Secrets: nothing here copies the environment anywhere. The API key is wandb's business
(``WANDB_API_KEY`` or ``wandb login``); a config key that looks like a credential is refused,
because config sections end up in job files and run configs.

Files: wandb keeps staging copies of uploaded files in ``WANDB_DATA_DIR`` and its cache and
core logs in ``WANDB_CACHE_DIR``, by default under ``$HOME``. Unless already set, both point
into the run's own W&B directory (``<dir>/wandb/data``, ``<dir>/wandb/cache``), so an offline
run keeps its staging copies beside its run files until ``wandb sync``. ``WANDB_CONFIG_DIR``
is left alone: it holds the host chosen by ``wandb login --host``, and losing it would send the
key to the default host.

``import wandb`` (about 1.5 s) happens on first use, never on import of this module.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nemo_runspec.env import load_env
from nemo_runspec.errors import ArtifactNotFoundError, ConfigError, NemotronError
from nemo_runspec.refs import LATEST, ArtifactRef
from nemo_runspec.registry.backend import ArtifactBackend
from nemo_runspec.registry.manifest import ManifestRegistry
from nemo_runspec.registry.record import ArtifactRecord

METADATA_KEY = "nemotron"          # our bookkeeping inside a W&B artifact's metadata
METADATA_FILE = "metadata.json"    # the record, uploaded as a file of the artifact
DATA_ENTRY = "data"                # reference entries: "data" (a file) or "data/<rel>" (a dir)
VERSION_ALIAS_PREFIX = "nemotron-v"
PUBLISH_JOB_TYPE = "publish-artifact"
RUN_ID_FILE = "wandb-run-id"       # in a training run directory: the W&B run it resumes
MODES = {"online": "online", "run": "online", "offline": "offline", "dryrun": "offline", "disabled": "disabled"}
_SECRET_KEY = re.compile(r"(wandb_)?(api_?key|key|(access_)?token|secret|password)", re.IGNORECASE)
_VERSION_ALIAS = re.compile(re.escape(VERSION_ALIAS_PREFIX) + r"[0-9]+")


class WandbError(NemotronError):
    """W&B could not be reached or refused a request (login, network)."""

    default_hint = ("log in with `wandb login` (or set WANDB_API_KEY in the environment), or set "
                    "WANDB_MODE=offline to keep W&B out of resolution")


# -- settings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WandbSettings:
    project: str
    entity: str | None
    mode: str                 # online | offline | disabled
    dir: Path | None          # where W&B files go; None: the caller's default

    @property
    def online(self) -> bool:
        return self.mode == "online"

    @property
    def project_path(self) -> str:
        return f"{self.entity}/{self.project}" if self.entity else self.project

    def artifact_path(self, name: str, selector: str) -> str:
        return f"{self.project_path}/{name}:{selector}"


def wandb_settings(section: Mapping[str, Any] | None, where: str) -> WandbSettings:
    """Settings from ``section`` (config key ``where``), env.toml's ``[wandb]`` and WANDB_*."""
    env = load_env()
    table = env.section("wandb")
    if table.get("dir") and env.path is not None:  # relative to the env.toml that names it
        table["dir"] = str(env.path.parent / Path(str(table["dir"])).expanduser())
    if section is not None and not isinstance(section, Mapping):
        raise ConfigError(f"{where} must be a mapping (project, entity, ...), got {type(section).__name__}")
    section = dict(section or {})
    for source, label in ((section, where), (table, f"{env.path or 'env.toml'}: [wandb]")):
        secret = next((k for k in source if _SECRET_KEY.fullmatch(str(k))), None)
        if secret:
            raise ConfigError(
                f"{label}.{secret}: credentials do not belong in configuration",
                hint="set WANDB_API_KEY in the environment or run `wandb login`; configs are copied into job files",
            )
    merged = {**{k: v for k, v in table.items() if v is not None}, **{k: v for k, v in section.items() if v is not None}}
    project = merged.get("project") or os.environ.get("WANDB_PROJECT")
    if not project:
        raise ConfigError(
            f"W&B is enabled but has no project: set [wandb] project in env.toml or {where}.project",
            hint=f"e.g. env.toml: [wandb] project = \"my-project\"; or +{where}.project=my-project; or WANDB_PROJECT",
        )
    raw_mode = os.environ.get("WANDB_MODE") or merged.get("mode") or "online"
    mode = MODES.get(str(raw_mode).lower())
    if mode is None:
        raise ConfigError(f"W&B mode {raw_mode!r} is not one of online, offline, disabled",
                          hint="set WANDB_MODE (or [wandb] mode) to online, offline or disabled")
    directory = merged.get("dir")
    return WandbSettings(
        project=str(project),
        entity=str(merged.get("entity") or os.environ.get("WANDB_ENTITY") or "") or None,
        mode=mode,
        dir=Path(str(directory)).expanduser().absolute() if directory else None,
    )


def check_installed(what: str) -> None:
    """Fail at setup, before any work, when wandb is missing; imports nothing."""
    try:
        found = sys.modules.get("wandb", ...) is not None and importlib.util.find_spec("wandb") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ConfigError(f"{what} needs the wandb package, which is not installed: pip install wandb")


def import_wandb(what: str = "the W&B backend"):
    try:
        import wandb
    except ImportError:
        raise ConfigError(f"{what} needs the wandb package, which cannot be imported: pip install wandb") from None
    return wandb


def prepare_dirs(base: Path) -> Path:
    """Keep wandb's staging copies, cache and core logs under ``base`` instead of $HOME."""
    base.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_DATA_DIR", str(base / "wandb" / "data"))
    os.environ.setdefault("WANDB_CACHE_DIR", str(base / "wandb" / "cache"))
    return base


def _run_settings(wandb, **extra: Any):
    # save_code=False: W&B would otherwise upload a diff of uncommitted files, which may hold
    # anything. reinit="create_new": never finish or replace a run the process already has.
    return wandb.Settings(save_code=False, console="off", silent=True, reinit="create_new", **extra)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


# -- records <-> W&B artifacts -------------------------------------------------------------------


def _sendable(alias: str, record: ArtifactRecord) -> bool:
    if _VERSION_ALIAS.fullmatch(alias):
        _warn(f"alias {alias!r} of {record.ref} is not sent to W&B: it would shadow our version aliases")
        return False
    return True


def version_alias(version: int) -> str:
    return f"{VERSION_ALIAS_PREFIX}{version}"


def wandb_metadata(record: ArtifactRecord) -> dict[str, Any]:
    """The W&B metadata of a record: typed fields on top, our bookkeeping under "nemotron"."""
    ours = {
        "version": record.version,
        "ref": record.ref,
        "producer": record.producer,
        "code_version": record.code_version,
        "path": record.path,
        "inputs": record.inputs,
        "created_at": record.created_at.isoformat(),
        "type_module": record.type_module,
        "metadata": record.metadata,
        "fields": sorted(record.fields),
    }
    return {**record.fields, METADATA_KEY: ours}


def reference_uri(path: str) -> str:
    return path if "://" in path else "file://" + path


def record_from_wandb(artifact: Any, name: str, wandb_path: str) -> ArtifactRecord:
    """Our record for a W&B artifact version (``artifact`` as ``wandb.Api().artifact`` returns
    it; ``wandb_path`` is where it was found, ``entity/project/name:vK``)."""
    metadata = dict(artifact.metadata or {})
    ours = metadata.pop(METADATA_KEY, None)
    if isinstance(ours, Mapping):  # logged by nemotron: our version and lineage are in there
        fields = {k: metadata[k] for k in ours.get("fields", metadata) if k in metadata}
        return ArtifactRecord(
            name=name,
            version=int(ours["version"]),
            type=artifact.type,
            type_module=ours.get("type_module"),
            path=_path_from_entries(artifact) or str(ours.get("path") or ""),
            created_at=ours.get("created_at") or _created_at(artifact),
            producer=ours.get("producer"),
            code_version=ours.get("code_version"),
            inputs=list(ours.get("inputs") or []),
            fields=fields,
            metadata=dict(ours.get("metadata") or {}),
        )
    # Logged by something else: W&B's own numbering, shifted to start at 1 as ours does.
    return ArtifactRecord(
        name=name,
        version=_wandb_number(artifact) + 1,
        type=artifact.type,
        path=_path_from_entries(artifact) or str(metadata.get("path") or f"wandb-artifact://{wandb_path}"),
        created_at=_created_at(artifact),
        fields=metadata,
    )


def _path_from_entries(artifact: Any) -> str | None:
    """The data path behind the reference entries: "data" -> its URI, "data/<rel>" -> minus rel."""
    for entry_path, entry in artifact.manifest.entries.items():
        ref = getattr(entry, "ref", None)
        if not ref or not (entry_path == DATA_ENTRY or entry_path.startswith(DATA_ENTRY + "/")):
            continue
        rel = entry_path[len(DATA_ENTRY) + 1:]
        if rel and ref.endswith("/" + rel):
            ref = ref[: -len(rel) - 1]
        return ref[len("file://"):] if ref.startswith("file://") else ref
    return None


def _created_at(artifact: Any) -> datetime:
    return getattr(artifact, "created_at", None) or datetime.now(timezone.utc)


def _wandb_number(artifact: Any) -> int:
    return int(str(artifact.version).lstrip("v"))


# -- the artifact backend ------------------------------------------------------------------------


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
            settings=_run_settings(wandb, x_disable_stats=True),  # a run of a second: no system stats
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


# -- training metrics -----------------------------------------------------------------------------


class WandbMetricsRun:
    """The W&B run of one training run directory: rank 0's metric records, step by step.

    The run id is kept in the run directory, so a resumed training continues the same W&B run
    (W&B ignores, with a warning, steps it already has from before the crash).
    """

    def __init__(self, run: Any):
        self.run = run

    @classmethod
    def start(cls, run_dir: Path, tracking: Mapping[str, Any], job: Mapping[str, Any]) -> WandbMetricsRun | None:
        settings = wandb_settings(tracking, where="tracking")
        if settings.mode == "disabled":
            return None
        wandb = import_wandb("tracking=wandb")
        run_dir = Path(run_dir)
        directory = prepare_dirs(settings.dir or Path(os.environ.get("WANDB_DIR") or run_dir))
        id_file = run_dir / RUN_ID_FILE
        run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:16]
        id_file.write_text(run_id)
        config = {k: job[k] for k in ("model", "train", "optimizer", "data") if k in job}
        run = wandb.init(
            project=settings.project,
            entity=settings.entity,
            dir=str(directory),
            mode=settings.mode,
            id=run_id,
            resume="allow",
            name=run_dir.parent.name,
            job_type=str(job.get("stage", "train")),
            config={**config, "run_dir": str(run_dir)},
            settings=_run_settings(wandb),
        )
        return cls(run)

    def log(self, record: Mapping[str, Any]) -> None:
        self.run.log({k: v for k, v in record.items() if k != "step"}, step=int(record["step"]))

    def close(self) -> None:
        self.run.finish()
