"""Hugging Face tokenizers from a local directory or tokenizer.json, with their identity.

The Rust ``tokenizers`` library is used directly (not ``transformers``): it loads in
milliseconds and its ``encode_batch`` is what data prep spends its time in.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nemo_runspec.errors import ConfigError
from nemotron.kit.artifacts.common import TokenizerInfo

if TYPE_CHECKING:
    import tokenizers

# Tried in order when tokenizer_config.json names no eos token.
_EOD_CANDIDATES = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>")


@dataclass(frozen=True)
class LoadedTokenizer:
    tokenizer: tokenizers.Tokenizer
    info: TokenizerInfo
    eod_id: int
    bos_id: int | None
    pad_id: int | None

    def token_ids(self) -> dict[str, int | None]:
        """The ids a trainer reads from a data artifact's metadata (``${art:data,eod_id}``)."""
        return {"eod_id": self.eod_id, "pad_id": self.pad_id}

    @property
    def vocab_size(self) -> int:
        return self.info.vocab_size


def tokenizer_file(path: str | Path) -> Path:
    """The tokenizer.json of a directory or file path; ConfigError when there is none."""
    path = Path(path).expanduser()
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(
            f"cannot load tokenizer from {path}: no tokenizer.json there",
            hint="tokenizer.path must be a Hugging Face tokenizer directory or a tokenizer.json file",
        )
    return file


@functools.cache
def load_tokenizer(path: str, name: str | None = None) -> LoadedTokenizer:
    """Load once per process (workers call this for every unit they take)."""
    from tokenizers import Tokenizer

    file = tokenizer_file(path)
    raw = file.read_bytes()
    try:
        tokenizer = Tokenizer.from_str(raw.decode("utf-8"))
    except Exception as err:  # the Rust side raises plain Exception with a parse message
        raise ConfigError(f"cannot load tokenizer {file}: {str(err).splitlines()[0]}") from None
    special = _special_tokens(file.parent / "tokenizer_config.json")
    eod = special.get("eos_token") or next((t for t in _EOD_CANDIDATES if tokenizer.token_to_id(t) is not None), None)
    eod_id = tokenizer.token_to_id(eod) if eod else None
    if eod_id is None:
        raise ConfigError(f"tokenizer {file} has no end-of-document token (tried {eod or ', '.join(_EOD_CANDIDATES)})")
    lookup = lambda key: tokenizer.token_to_id(special[key]) if special.get(key) else None  # noqa: E731
    info = TokenizerInfo(
        path=str(file.resolve()),
        sha256=hashlib.sha256(raw).hexdigest(),
        vocab_size=tokenizer.get_vocab_size(with_added_tokens=True),
        name=name,
    )
    return LoadedTokenizer(tokenizer=tokenizer, info=info, eod_id=eod_id, bos_id=lookup("bos_token"), pad_id=lookup("pad_token"))


def _special_tokens(config_file: Path) -> dict[str, str]:
    if not config_file.is_file():
        return {}
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{config_file}: not valid JSON: {err}") from None
    tokens = {}
    for key in ("bos_token", "eos_token", "pad_token"):
        value = config.get(key)
        if isinstance(value, dict):  # AddedToken serialised as {"content": ...}
            value = value.get("content")
        if isinstance(value, str):
            tokens[key] = value
    return tokens
