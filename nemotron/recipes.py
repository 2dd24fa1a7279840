"""Where nemotron's configuration lives, and the recipes each family offers.

``conf/`` (shared config groups) and ``recipes/<family>/<recipe>/`` sit at the top of the source tree;
``NEMOTRON_CONF_DIR`` / ``NEMOTRON_RECIPES_DIR`` point elsewhere (a site's own recipes).
``${asset:REL}`` resolves to a file shipped in ``nemotron/data/`` (samples, tokenizers).
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

from nemo_runspec.errors import ConfigError
from nemo_runspec.hydra_app import Recipe

PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE_DIR.parent
ASSETS_DIR = PACKAGE_DIR / "data"


def conf_dir() -> Path:
    return Path(os.environ.get("NEMOTRON_CONF_DIR", SOURCE_ROOT / "conf")).resolve()


def recipes_dir() -> Path:
    return Path(os.environ.get("NEMOTRON_RECIPES_DIR", SOURCE_ROOT / "recipes")).resolve()


def families() -> list[str]:
    root = recipes_dir()
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))) if root.is_dir() else []


def recipe(family: str, name: str) -> Recipe:
    """The recipe ``name`` (``data_prep_pretrain``, ``pretrain``, ...) of ``family``.

    Each recipe is a folder with its primary ``config.yaml`` and its own ``variant/`` group,
    so ``variant=full`` can switch exactly the groups that recipe uses.
    """
    config_dir = recipes_dir() / family / name
    if not (config_dir / "config.yaml").is_file():
        known = ", ".join(families()) or "none"
        raise ConfigError(f"family {family!r} has no recipe {name!r} ({config_dir})", hint=f"families: {known}")
    return Recipe(config_dir=config_dir, config_name="config", search_path=(conf_dir(),))


def asset_path(relative: str) -> str:
    path = (ASSETS_DIR / relative).resolve()
    if not path.is_relative_to(ASSETS_DIR) or not path.exists():
        raise ConfigError(f"${{asset:{relative}}}: no such file shipped in {ASSETS_DIR}")
    return str(path)


def register_resolvers() -> None:
    import nemo_runspec  # noqa: F401  (registers ${art:...})

    if not OmegaConf.has_resolver("asset"):
        OmegaConf.register_new_resolver("asset", asset_path)


register_resolvers()
