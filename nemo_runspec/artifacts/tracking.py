"""An artifact tracking: the registry a run publishes to and resolves from, built from config.

``tracking_from_config(config)`` builds one from the ``artifacts:`` config section,
``NEMOTRON_ARTIFACTS_ROOT`` and env.toml's ``[artifacts]`` table (in that order of precedence;
the default root is ``./artifacts``). Which tracking is the process's active one is
``nemo_runspec.artifacts.active``'s business, not this module's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nemo_runspec import contents
from nemo_runspec.env import load_env
from nemo_runspec.errors import ArtifactDeletedError, ArtifactNotFoundError, ConfigError
from nemo_runspec.provenance import CodeVersion, Producer, current_code_version, current_producer
from nemo_runspec.refs import ArtifactRef, is_artifact_ref, validate_alias, validate_name
from nemo_runspec.registry.backend import ArtifactBackend
from nemo_runspec.registry.manifest import ManifestRegistry
from nemo_runspec.registry.record import METADATA_FILE, ArtifactRecord

ROOT_VAR = "NEMOTRON_ARTIFACTS_ROOT"
DEFAULT_ROOT = "artifacts"


def _wandb_backend(config: Mapping[str, Any]) -> ArtifactBackend:
    from nemo_runspec.registry.wandb_backend import WandbBackend  # wandb itself loads on first use

    return WandbBackend.from_config(config)


# Secondary backends by the name used in `backends = [...]`; each gets the merged [artifacts] /
# `artifacts:` settings plus the resolved root. Later modules add theirs.
BACKEND_FACTORIES: dict[str, Callable[[Mapping[str, Any]], ArtifactBackend]] = {"wandb": _wandb_backend}


class PublishableArtifact(Protocol):
    """What publishing needs of an artifact; ``nemo_runspec.artifacts.base.Artifact`` has it.

    A protocol rather than that class: the class resolves ``from_uri`` through the active
    tracking, so importing it here would close an import cycle.
    """

    name: str | None
    version: int | None
    producer: Producer | None
    code_version: CodeVersion | None

    def get_input_uris(self) -> list[str]: ...

    def default_name(self) -> str: ...

    def to_record(self, name: str, inputs: list[str]) -> ArtifactRecord: ...

    def save_metadata(self, record: ArtifactRecord) -> Path | None: ...


@dataclass
class ArtifactTracking:
    """The primary registry plus secondary backends, with a per-run resolution cache.

    Within one tracking, a reference resolves to the same version every time (``latest``
    does not move under a running job), except for names this tracking itself publishes.
    """

    registry: ManifestRegistry
    mirrors: list[ArtifactBackend] = field(default_factory=list)
    digests: bool = True  # a manifest of each version's files at publish (artifacts.digests)
    _cache: dict[str, ArtifactRecord] = field(default_factory=dict, repr=False)

    @property
    def backends(self) -> list[ArtifactBackend]:
        return [self.registry, *self.mirrors]

    def resolve(self, ref: str | ArtifactRef, *, deleted_ok: bool = False) -> ArtifactRecord:
        """The record ``ref`` names; one whose data gc deleted is an error unless ``deleted_ok``
        (what only reads records: show, lineage, diff)."""
        parsed = ref if isinstance(ref, ArtifactRef) else ArtifactRef.parse(ref)
        key = str(parsed)
        if key not in self._cache:
            self._cache[key] = self._resolve_uncached(parsed)
        record = self._cache[key]
        if record.deleted is not None and not deleted_ok:
            raise_deleted(record)
        return record

    def _resolve_uncached(self, ref: ArtifactRef) -> ArtifactRecord:
        try:
            return self.registry.resolve(ref)
        except ArtifactNotFoundError as not_here:
            for mirror in self.mirrors:
                try:
                    return mirror.resolve(ref)
                except (ArtifactNotFoundError, NotImplementedError):
                    continue
            raise not_here

    def publish(
        self,
        artifact: PublishableArtifact,
        name: str,
        inputs: Iterable[str] = (),
        aliases: Iterable[str] = (),
        owned_dir: str | os.PathLike[str] | None = None,
    ) -> ArtifactRecord:
        """Publish ``artifact`` as the next version of ``name``. ``owned_dir`` is a directory
        the caller created for this version's data alone (gc may delete it, nothing else)."""
        validate_name(name)
        aliases = [validate_alias(a) for a in aliases]
        uris = _unique([*artifact.get_input_uris(), *inputs])
        input_records = {uri: self.resolve(uri) for uri in uris if is_artifact_ref(uri)}
        pinned = _unique([input_records[u].uri if u in input_records else u for u in uris])
        if artifact.producer is None:
            artifact.producer = current_producer()
        if artifact.code_version is None:
            artifact.code_version = current_code_version()
        draft = artifact.to_record(name, pinned)
        draft = draft.model_copy(update={"contents": self._contents_of(draft), "owned_dir": _owned(owned_dir)})
        with self.registry.lock(exclusive=False):  # gc marks deletions under it, exclusively
            for record in input_records.values():  # gc may have removed one since this run resolved it
                if (deletion := self.registry.deletion(record.name, record.version)) is not None:
                    raise_deleted(record.model_copy(update={"deleted": deletion}))
            record = self.registry.publish(draft)
        self._forget(name)
        for alias in aliases:
            self.registry.set_alias(name, alias, record.version)
        for mirror in self.mirrors:
            mirror.mirror(record, list(input_records.values()))
        artifact.name, artifact.version = record.name, record.version
        artifact.save_metadata(record)
        return record

    def _contents_of(self, draft: ArtifactRecord) -> contents.ContentManifest | None:
        # The registry's metadata.json is written after the manifest, so it is not in it.
        if not self.digests or "://" in draft.path or not os.path.exists(draft.path):
            return None
        return contents.manifest_of(draft.path, exclude=(METADATA_FILE,))

    def set_alias(self, ref: str, alias: str) -> ArtifactRecord:
        record = self.registry.resolve(ArtifactRef.parse(ref))
        self.registry.set_alias(record.name, alias, record.version)
        self._forget(record.name)
        for mirror in self.mirrors:
            mirror.mirror_alias(record, alias)
        return record

    def _forget(self, name: str) -> None:
        for key in [k for k in self._cache if k.split(":", 1)[0] == name]:
            del self._cache[key]


def tracking_from_config(config: Any = None) -> ArtifactTracking:
    """The tracking described by ``config``, completed from NEMOTRON_ARTIFACTS_ROOT and env.toml.

    ``config`` may be None, a full run config with an ``artifacts:`` section, or that section
    itself (a mapping or OmegaConf node with ``root`` and ``backends``).
    """
    section = _artifacts_section(config)
    env = load_env()
    env_section = env.section("artifacts")
    root = section.get("root") or os.environ.get(ROOT_VAR) or _env_root(env_section, env.path) or DEFAULT_ROOT
    backends = list(section.get("backends") or env_section.get("backends") or ["manifest"])
    if "manifest" not in backends:
        raise ConfigError(
            f"artifacts.backends={backends} leaves out 'manifest'",
            hint="the manifest is the registry that allocates versions; add it beside other backends",
        )
    mirrors = []
    for backend in backends:
        if backend == "manifest":
            continue
        if backend not in BACKEND_FACTORIES:
            known = ", ".join(["manifest", *BACKEND_FACTORIES])
            raise ConfigError(f"unknown artifact backend {backend!r} (known: {known})")
        mirrors.append(BACKEND_FACTORIES[backend]({**env_section, **section, "root": root}))
    digests = section.get("digests", env_section.get("digests", True))
    return ArtifactTracking(registry=ManifestRegistry(root), mirrors=mirrors, digests=bool(digests))


def raise_deleted(record: ArtifactRecord) -> None:
    when = record.deleted.at.strftime("%Y-%m-%d %H:%M UTC") if record.deleted else "?"
    raise ArtifactDeletedError(f"{record.uri}: its data was deleted by `nemotron artifact gc` on {when} "
                               f"(the record is kept for lineage)",
                               hint=f"use another version, or rebuild it: nemotron artifact reproduce {record.ref} --log")


def _owned(directory: str | os.PathLike[str] | None) -> str | None:
    return None if directory is None else str(Path(directory).absolute())


def _artifacts_section(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, Mapping):  # DictConfig is a Mapping too
        raise ConfigError(f"setup_artifact_tracking expects a mapping or DictConfig, got {type(config).__name__}")
    if "artifacts" in config:
        section = config["artifacts"]
    elif {"root", "backends"} & set(config.keys()):
        section = config
    else:
        return {}
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"config 'artifacts' must be a mapping, got {type(section).__name__}")
    from omegaconf import DictConfig, OmegaConf

    if isinstance(section, DictConfig):
        # Only this section is resolved: the rest of a run config may hold ${art:...}
        # references, which need the tracking this call is building.
        return OmegaConf.to_container(section, resolve=True)  # type: ignore[return-value]
    return dict(section)


def _env_root(section: Mapping[str, Any], env_path: Path | None) -> str | None:
    root = section.get("root")
    if not root:
        return None
    path = Path(str(root)).expanduser()
    if not path.is_absolute() and env_path is not None:
        path = env_path.parent / path  # relative to the env.toml that names it
    return str(path)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
