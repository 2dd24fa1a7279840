"""Conversations -> token ids with a loss mask, through a Hugging Face chat template.

Records are OpenAI-style ``{"messages": [...], "tools": [...]}`` (roles system, user,
assistant, tool; content a string or a list of text parts; assistant ``reasoning_content``
and ``tool_calls``), or instruction records ``{"input", "output"}`` /
``{"instruction", "input", "output"|"response"}`` mapped onto a user and an assistant turn.

The mask comes from rendering the conversation incrementally: the text an assistant turn
adds after the generation prompt (its content, and its end-of-turn token; trailing whitespace
excluded) is what the model learns. Every prefix rendering must be a prefix of the next and of
the full rendering; a template that breaks this (it rewrites earlier turns, say) cannot be
masked by text positions, and the conversation is rejected rather than mis-masked.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from nemo_runspec.errors import ConfigError
from nemotron.data.bad_records import RecordError

ROLES = ("system", "user", "assistant", "tool")
TEMPLATES_PACKAGE = "nemotron.data.chat_templates"


class ConversationError(RecordError):
    """A conversation that cannot be used (``reason``: the counter it is skipped under)."""


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    source: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()

    def render(self, messages: list[dict], tools: list | None, add_generation_prompt: bool) -> str:
        try:
            return _compiled(self.source).render(messages=messages, tools=tools,
                                                 add_generation_prompt=add_generation_prompt)
        except Exception as err:  # jinja2 raises TemplateError and whatever the template's code raises
            raise ConversationError("render_failed", f"chat template {self.name!r} failed: {err}") from None


def load_template(spec: str, tokenizer_path: str | Path) -> ChatTemplate:
    """``tokenizer`` (its tokenizer_config.json chat_template), a shipped name, or a file."""
    if spec == "tokenizer":
        config_file = Path(tokenizer_path)
        config_file = (config_file if config_file.is_dir() else config_file.parent) / "tokenizer_config.json"
        try:
            source = json.loads(config_file.read_text(encoding="utf-8")).get("chat_template")
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"{config_file}: cannot read the tokenizer's chat template: {err}") from None
        if not isinstance(source, str):
            raise ConfigError(f"{config_file} has no chat_template", hint="set data_prep.chat_template=chatml or a .jinja file")
        return ChatTemplate("tokenizer", source)
    shipped = resources.files(TEMPLATES_PACKAGE).joinpath(f"{spec}.jinja")
    if shipped.is_file():
        return ChatTemplate(spec, shipped.read_text(encoding="utf-8"))
    path = Path(spec).expanduser()
    if path.is_file():
        return ChatTemplate(path.name, path.read_text(encoding="utf-8"))
    known = sorted(p.name[:-6] for p in resources.files(TEMPLATES_PACKAGE).iterdir() if p.name.endswith(".jinja"))
    raise ConfigError(f"chat template {spec!r} is neither 'tokenizer', a shipped template ({', '.join(known)}) nor a file")


@functools.lru_cache(maxsize=16)
def _compiled(source: str):
    return _environment().from_string(source)


_ENV = None


def _environment():
    """A sandbox configured as transformers renders chat templates."""
    global _ENV
    if _ENV is None:
        from jinja2.ext import loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message):
            raise ValueError(message)

        _ENV = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
        _ENV.filters["tojson"] = lambda value, indent=None: json.dumps(value, ensure_ascii=False, indent=indent)
        _ENV.globals["raise_exception"] = raise_exception
    return _ENV


def to_messages(record: Any) -> tuple[list[dict], list | None]:
    """The record's messages (content normalised to strings) and tools."""
    if not isinstance(record, dict):
        raise ConversationError("bad_record", f"record is a JSON {type(record).__name__}, not an object")
    if "messages" in record:
        raw, tools = record["messages"], record.get("tools")
    elif "output" in record or "response" in record:
        prompt = "\n\n".join(str(record[k]) for k in ("instruction", "input") if record.get(k))
        raw = [{"role": "user", "content": prompt},
               {"role": "assistant", "content": record.get("output", record.get("response"))}]
        tools = None
    else:
        raise ConversationError("bad_record", f"no 'messages' and no 'output' field (keys: {', '.join(list(record)[:8])})")
    if not isinstance(raw, list) or not raw:
        raise ConversationError("bad_record", "'messages' must be a non-empty list")
    messages = [_message(m, i) for i, m in enumerate(raw)]
    if not any(m["role"] == "assistant" for m in messages):
        raise ConversationError("no_assistant", "conversation has no assistant turn")
    return messages, tools


def _message(message: Any, index: int) -> dict:
    if not isinstance(message, dict):
        raise ConversationError("bad_record", f"messages[{index}] is not an object")
    role = message.get("role")
    if role not in ROLES:
        raise ConversationError("unknown_role", f"messages[{index}] has unknown role {role!r} (roles: {', '.join(ROLES)})")
    normalised = dict(message)
    normalised["content"] = _content_text(message.get("content"), index, allow_empty=role == "assistant")
    if message.get("reasoning_content") is not None and not isinstance(message["reasoning_content"], str):
        raise ConversationError("bad_content", f"messages[{index}].reasoning_content is not a string")
    return normalised


def _content_text(content: Any, index: int, allow_empty: bool) -> str:
    if isinstance(content, str):
        return content
    if content is None and allow_empty:
        return ""
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                raise ConversationError("bad_content", f"messages[{index}].content has a part that is not text: {str(part)[:60]}")
        return "".join(texts)
    raise ConversationError("bad_content", f"messages[{index}].content is a {type(content).__name__}, not a string or list of parts")


@dataclass(frozen=True)
class MaskedSequence:
    input_ids: np.ndarray  # int32
    loss_mask: np.ndarray  # uint8, token-aligned: 1 where input_ids[i] is a target


def assistant_spans(messages: list[dict], tools: list | None, template: ChatTemplate) -> tuple[str, list[tuple[int, int]]]:
    """The full rendering and the character spans the model must learn."""
    full = template.render(messages, tools, add_generation_prompt=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = template.render(messages[:i], tools, add_generation_prompt=True)
        upto = template.render(messages[: i + 1], tools, add_generation_prompt=False)
        if not upto.startswith(prompt) or not full.startswith(upto):
            raise ConversationError(
                "template_inconsistent",
                f"rendering up to turn {i} is not a prefix of the full conversation under template {template.name!r}",
            )
        spans.append((len(prompt), len(prompt) + len(upto[len(prompt):].rstrip())))
    return full, spans


def tokenize_conversation(messages: list[dict], tools: list | None, template: ChatTemplate, tokenizer) -> MaskedSequence:
    text, spans = assistant_spans(messages, tools, template)
    encoding = tokenizer.encode(text, add_special_tokens=False)
    ids = np.asarray(encoding.ids, dtype=np.int32)
    starts = np.fromiter((start for start, _ in encoding.offsets), np.int64, len(ids))
    mask = np.zeros(len(ids), dtype=np.uint8)
    for lo, hi in spans:
        mask[(starts >= lo) & (starts < hi)] = 1
    return MaskedSequence(ids, mask)
