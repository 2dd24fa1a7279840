"""Guards on what PATH names: it exists, is what the import expects, and every symlink in it
stays inside it; JSON files of the input read with one-line errors."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

from nemo_runspec.errors import ConfigError, DataError

LINK_HINT = "fix or remove the link; nothing was logged"


def resolve(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(PATH made absolute, PATH with every symlink resolved); missing or looping -> error."""
    given = Path(path).expanduser().absolute()
    try:
        return given, given.resolve(strict=True)
    except FileNotFoundError:
        raise ConfigError(f"{given} does not exist", hint="check the path; nothing was logged") from None
    except (RuntimeError, OSError) as err:  # RuntimeError: a symlink loop (Python < 3.13)
        raise ConfigError(f"{given}: cannot resolve ({loop_or(err)})", hint=LINK_HINT) from None


def loop_or(err: BaseException) -> str:
    """Why a path does not resolve, in words."""
    if isinstance(err, RuntimeError) or getattr(err, "errno", None) == errno.ELOOP:
        return "a symlink loop"
    return getattr(err, "strerror", None) or str(err)


def found(directory: Path) -> str:
    """What ``directory`` holds, for an error that says what was expected instead."""
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in directory.iterdir())
    return ", ".join(names[:12]) + (f", ... ({len(names)} entries)" if len(names) > 12 else "") if names else "nothing"


def non_empty_dir(resolved: Path, given: Path, expected: str) -> None:
    if not resolved.is_dir():
        raise ConfigError(f"{given} is a file; expected a directory: {expected}", hint="import the directory that holds it")
    if not any(resolved.iterdir()):
        raise ConfigError(f"{given} is empty; expected {expected}", hint="check the path; nothing was logged")


def check_tree(root: Path) -> list[tuple[str, int, int]]:
    """Every symlink under ``root`` resolves inside it; returns (file, size, mtime) of each file.

    Symlinked directories are not descended into: the links must point inside ``root``,
    whose real contents are walked anyway."""
    listing = []
    for directory, dirnames, filenames in os.walk(root):
        for entry in sorted(dirnames + filenames):
            path = Path(directory) / entry
            if path.is_symlink():
                _check_link(path, root)
            if entry in filenames:
                stat = path.stat()
                listing.append((str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns))
    return listing


def _check_link(path: Path, root: Path) -> None:
    try:
        target = path.resolve(strict=True)
    except FileNotFoundError:
        raise ConfigError(f"symlink {path} points to {os.readlink(path)}, which does not exist", hint=LINK_HINT) from None
    except (RuntimeError, OSError) as err:
        raise ConfigError(f"symlink {path} cannot be resolved ({loop_or(err)})", hint=LINK_HINT) from None
    if not target.is_relative_to(root):
        raise ConfigError(f"symlink {path} points outside the imported directory {root} (to {target})",
                          hint="copy the files it points to into the directory (cp -L), or import "
                               "the directory that holds them")


def read_json(file: Path, what: str) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{file}: not valid JSON ({err})", hint=f"{file.name} must be {what}") from None
