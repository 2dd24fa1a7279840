"""The options every import shares: the stage it imports for and ``--tokenizer``."""

from __future__ import annotations

from pathlib import Path

from nemo_runspec.errors import ConfigError

STAGES = ("pretrain", "sft", "rl")


def check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}", hint=f"one of: {', '.join(STAGES)}")


def load_tokenizer(option: str):
    """--tokenizer: a directory or tokenizer.json, named after the directory that holds it."""
    from nemotron.data.tokenizer import load_tokenizer as load, tokenizer_file

    path = Path(option).expanduser().absolute()
    return load(str(path), tokenizer_file(path).parent.name)


def require_tokenizer(option: str | None, stage: str):
    """--tokenizer where the data's token ids must be checked against it."""
    if option is None:
        raise ConfigError(f"importing {stage} data needs the tokenizer its token ids come from",
                          hint="pass --tokenizer PATH (a tokenizer directory or tokenizer.json)")
    return load_tokenizer(option)
