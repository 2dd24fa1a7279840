"""Where W&B logs to and how it is reached: settings, credentials policy, wandb's files.

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

``import wandb`` (about 1.5 s) happens on first use (:func:`import_wandb`), never on import of
this module.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemo_runspec.env import load_env
from nemo_runspec.errors import ConfigError

MODES = {"online": "online", "run": "online", "offline": "offline", "dryrun": "offline", "disabled": "disabled"}
_SECRET_KEY = re.compile(r"(wandb_)?(api_?key|key|(access_)?token|secret|password)", re.IGNORECASE)


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


def run_settings(wandb, **extra: Any):
    """The ``wandb.Settings`` of every run we start."""
    # save_code=False: W&B would otherwise upload a diff of uncommitted files, which may hold
    # anything. reinit="create_new": never finish or replace a run the process already has.
    return wandb.Settings(save_code=False, console="off", silent=True, reinit="create_new", **extra)
