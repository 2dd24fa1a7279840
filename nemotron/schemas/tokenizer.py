"""The ``tokenizer`` group: a Hugging Face tokenizer directory or tokenizer.json."""

from __future__ import annotations

from nemo_runspec.schema import GroupSchema


class TokenizerConfig(GroupSchema):
    name: str | None = None
    path: str
