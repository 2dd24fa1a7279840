"""The options every import shares: the stage it imports for and ``--tokenizer``."""

from __future__ import annotations

import json
from pathlib import Path

from nemo_runspec.errors import ConfigError

STAGES = ("pretrain", "sft", "rl")
TOKENIZER_HINT = "pass --tokenizer PATH (a tokenizer directory or tokenizer.json)"


def check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}", hint=f"one of: {', '.join(STAGES)}")


def load_tokenizer(option: str, name: str | None = None):
    """--tokenizer: a directory or tokenizer.json, named after the directory that holds it."""
    from nemotron.data.tokenizer import load_tokenizer as load, tokenizer_file

    path = Path(option).expanduser().absolute()
    return load(str(path), name or tokenizer_file(path).parent.name)


def require_tokenizer(option: str | None, stage: str, recorded_in: Path | None = None):
    """--tokenizer where the data's token ids must be checked against it; without it, the one
    ``recorded_in/metadata.json`` records (a directory this project wrote), if that file is
    still the one recorded."""
    if option is not None:
        return load_tokenizer(option)
    metadata = recorded_in / "metadata.json" if recorded_in else None
    recorded = _recorded_tokenizer(metadata) if metadata else None
    if recorded is None:
        raise ConfigError(f"importing {stage} data needs the tokenizer its token ids come from", hint=TOKENIZER_HINT)
    from nemotron.data.files import file_sha256

    path = Path(recorded["path"])
    if not path.is_file():
        raise ConfigError(f"{metadata} records the tokenizer {path}, which is missing", hint=TOKENIZER_HINT)
    if file_sha256(path) != recorded["sha256"]:
        raise ConfigError(f"{metadata} records the tokenizer {path}, whose sha256 now differs", hint=TOKENIZER_HINT)
    return load_tokenizer(str(path), recorded.get("name"))


def _recorded_tokenizer(metadata: Path) -> dict | None:
    """``fields.tokenizer`` (path, sha256, name) of an artifact's metadata.json; None when there
    is none to read (no such file, or not one this project wrote)."""
    try:
        tokenizer = json.loads(metadata.read_text(encoding="utf-8"))["fields"]["tokenizer"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(tokenizer, dict) or not all(isinstance(tokenizer.get(k), str) for k in ("path", "sha256")):
        return None
    return tokenizer
