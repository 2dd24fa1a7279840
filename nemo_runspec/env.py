"""``env.toml``: per-machine settings kept out of recipes.

Found through ``NEMOTRON_ENV_FILE`` or by walking up from the working directory. Reserved
tables configure the run infrastructure (``[artifacts]``, ``[wandb]``); every other top-level
table is a named execution profile (``executor``, ``partition``, ...) that may ``extends`` another.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemo_runspec.errors import ConfigError

ENV_FILE_NAME = "env.toml"
ENV_FILE_VAR = "NEMOTRON_ENV_FILE"
RESERVED_TABLES = frozenset({"artifacts", "wandb"})


@dataclass(frozen=True)
class EnvFile:
    """A parsed env.toml (or an empty one when none exists)."""

    path: Path | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self.path}: [{name}] must be a table, got {type(value).__name__}")
        return dict(value)

    @property
    def profile_names(self) -> list[str]:
        return sorted(k for k, v in self.data.items() if isinstance(v, dict) and k not in RESERVED_TABLES)

    def profile(self, name: str) -> dict[str, Any]:
        """The profile with its ``extends`` chain merged in (the child's keys win)."""
        chain: list[str] = []
        merged: dict[str, Any] = {}
        current: str | None = name
        while current is not None:
            if current in chain:
                raise ConfigError(f"{self.path}: profile cycle through 'extends': {' -> '.join([*chain, current])}")
            if current not in self.profile_names:
                known = ", ".join(self.profile_names) or "none"
                where = f"profile {name!r}" if current == name else f"profile {chain[-1]!r} extends {current!r}, which"
                raise ConfigError(f"{self.path or ENV_FILE_NAME}: {where} is not defined (profiles: {known})")
            chain.append(current)
            table = self.data[current]
            merged = {**table, **merged}
            current = table.get("extends")
        merged.pop("extends", None)
        merged["name"] = name
        return merged


def find_env_file(start: Path | None = None) -> Path | None:
    explicit = os.environ.get(ENV_FILE_VAR)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"{ENV_FILE_VAR}={explicit} does not name a file")
        return path
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / ENV_FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def load_env(path: Path | None = None) -> EnvFile:
    path = path or find_env_file()
    if path is None:
        return EnvFile()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        line = re.search(r"at line (\d+)", str(err))
        where = f"{path}:{line.group(1)}" if line else str(path)
        raise ConfigError(f"{where}: invalid TOML: {err}", hint="fix the syntax of env.toml") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read env file: {err}") from None
    return EnvFile(path=path, data=data)


@contextmanager
def exported(env: dict[str, str]) -> Iterator[None]:
    """``env`` set in this process's environment for the block, then put back as it was (a SLURM
    profile's variables for sbatch, which the job inherits; a reproduction's output roots)."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
