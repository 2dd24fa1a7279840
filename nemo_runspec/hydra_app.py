"""Compose and run recipes through Hydra: single runs, ``-m`` sweeps and dry runs.

A recipe is a primary config in a family's folder plus the shared config groups on Hydra's
search path. Runs go through ``hydra.main`` so that Hydra's sweepers and launchers (basic,
submitit) apply unchanged; before that, every job's config is composed once with Hydra's
compose API so a bad override is reported as one line instead of Hydra's multi-line report.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemo_runspec.errors import ConfigError, NemotronError, report_error, user_error

HYDRA_VERSION_BASE = "1.3"


@dataclass(frozen=True)
class Recipe:
    """``config_name`` (``config`` of a recipe folder) in ``config_dir``, with shared groups."""

    config_dir: Path
    config_name: str
    search_path: tuple[Path, ...] = ()

    def hydra_overrides(self, overrides: list[str]) -> list[str]:
        if not self.search_path:
            return list(overrides)
        paths = ",".join(f"file://{p}" for p in self.search_path)
        return [f"hydra.searchpath=[{paths}]", *overrides]


def expand_sweeps(overrides: list[str]) -> list[list[str]]:
    """Every job's override list: the cartesian product of the sweep overrides (a=1,2)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as err:  # Hydra raises OverrideParseException with a multi-line message
        raise ConfigError(f"bad override: {_first_line(err)}", hint=_OVERRIDE_HINT) from None
    choices = []
    for override in parsed:
        key = override.get_key_element()
        if override.is_sweep_override():
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            choices.append([override.input_line])
    return [list(job) for job in itertools.product(*choices)]


def compose(recipe: Recipe, overrides: list[str]) -> Any:
    """The composed config of one job (no sweeps), errors as one-line ConfigError."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(recipe.config_dir), version_base=HYDRA_VERSION_BASE):
            return hydra_compose(recipe.config_name, overrides=recipe.hydra_overrides(overrides))
    except NemotronError:
        raise
    except Exception as err:
        raise ConfigError(f"cannot compose {recipe.config_name}: {_first_line(err)}", hint=_OVERRIDE_HINT) from None
    finally:
        GlobalHydra.instance().clear()


def compose_jobs(recipe: Recipe, overrides: list[str]) -> list[Any]:
    """Every job's composed config, one per combination of swept values; a bad override fails
    here, in one line, before anything runs or is submitted."""
    return [compose(recipe, job) for job in expand_sweeps(overrides)]


def to_plain(cfg: Any) -> dict[str, Any]:
    """The config as plain data with every interpolation, ``${art:...}`` included, resolved.

    A value left as ``???`` or an interpolation that fails becomes a one-line ConfigError.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]
    except MissingMandatoryValue as err:
        key = getattr(err, "full_key", None) or _first_line(err)
        raise ConfigError(f"config value {key} is missing (???)", hint=f"set it on the command line: {key}=...") from None
    except OmegaConfBaseException as err:
        if user_error(err) is not None:
            raise user_error(err) from None
        raise ConfigError(f"cannot resolve the config: {_first_line(err)}") from None


def resolved_yaml(cfg: Any) -> str:
    """The config as YAML, fully resolved (artifact references included)."""
    from omegaconf import OmegaConf

    from nemo_runspec.artifacts import setup_artifact_tracking

    setup_artifact_tracking(cfg)
    return OmegaConf.to_yaml(OmegaConf.create(to_plain(cfg)))


def dry_run(recipe: Recipe, overrides: list[str]) -> tuple[list[str], list[str]]:
    """The resolved YAML of each job the command would run, and notes on what could not be
    resolved; nothing is executed. A value that needs an artifact the registry does not hold
    yet (``${art:...}``, or one built on it) is shown as written, so a recipe can be read before
    its inputs exist."""
    from omegaconf import OmegaConf

    from nemo_runspec.artifacts import setup_artifact_tracking

    texts, notes = [], []
    for job in expand_sweeps(overrides):
        cfg = compose(recipe, job)
        setup_artifact_tracking(cfg)
        unresolved: dict[str, str] = {}
        plain = _resolved_where_possible(cfg, "", unresolved)
        texts.append(OmegaConf.to_yaml(OmegaConf.create(plain)))
        if unresolved:
            reason = next(iter(unresolved.values()))
            notes.append(f"{len(unresolved)} value(s) left as written ({', '.join(unresolved)}): {reason}")
    return texts, notes


def _resolved_where_possible(node: Any, prefix: str, unresolved: dict[str, str]) -> Any:
    """``node`` as plain data; an interpolation that fails on a user error (an artifact that
    does not exist yet) stays as written and is noted in ``unresolved`` (key -> why)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    keys = list(node.keys()) if isinstance(node, DictConfig) else range(len(node))
    plain: Any = {} if isinstance(node, DictConfig) else []
    for key in keys:
        path = f"{prefix}.{key}" if prefix else str(key)
        try:
            value = node[key]
        except MissingMandatoryValue:
            value = "???"
        except OmegaConfBaseException as err:
            cause = user_error(err)
            if cause is None:
                raise ConfigError(f"cannot resolve {path}: {_first_line(err)}") from None
            unresolved[path] = str(cause)
            value = node._get_node(key)._value()  # the interpolation as written
        if isinstance(value, (DictConfig, ListConfig)):
            value = _resolved_where_possible(value, path, unresolved)
        elif OmegaConf.is_config(value):
            value = OmegaConf.to_container(value)
        if isinstance(plain, dict):
            plain[key] = value
        else:
            plain.append(value)
    return plain


def run(
    recipe: Recipe,
    overrides: list[str],
    task: Callable[[Any], Any],
    *,
    multirun: bool = False,
    debug: bool = False,
    composed: list[Any] | None = None,
) -> list[Any]:
    """Run ``task(cfg)`` once, or once per sweep job with ``multirun``, through ``hydra.main``.

    ``composed``: what :func:`compose_jobs` returned for these overrides, when the caller has it.
    Returns what each job returned. A job that fails with a NemotronError prints one line and
    exits non-zero (``debug`` keeps the traceback).
    """
    import hydra

    jobs = composed if composed is not None else compose_jobs(recipe, overrides)  # fail early, in one line
    require_multirun(len(jobs), multirun)
    results: list[Any] = []

    def job_main(cfg: Any) -> None:
        try:
            results.append(task(cfg))
        except Exception as err:
            if debug:
                raise
            raise SystemExit(report_error(err)) from None

    argv = ["nemotron", *(["--multirun"] if multirun else []), *recipe.hydra_overrides(overrides)]
    main = hydra.main(config_path=str(recipe.config_dir), config_name=recipe.config_name,
                      version_base=HYDRA_VERSION_BASE)(job_main)
    saved_argv, saved_full_error = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = argv
    if debug:
        os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        main()
    finally:
        sys.argv = saved_argv
        if debug and saved_full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
    return results


def require_multirun(jobs: int, multirun: bool) -> None:
    if jobs > 1 and not multirun:
        raise ConfigError("a sweep override (a=1,2) needs -m/--multirun", hint="add -m to run one job per value")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


_OVERRIDE_HINT = "overrides are key=value, +key=value, ~key or group=option; --cfg job prints the composed config"
