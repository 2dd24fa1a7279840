"""One RL input record -> one prompt, and one prompt -> one output line: the record shapes
``data prep rl`` reads and the schema of the split JSONL it writes (the import checks the same).

Input shapes
------------
One JSON object a line (JSONL, JSONL.gz) or one Parquet row per record, in any of three
shapes, told apart by their keys in this order:

1. NeMo-Gym: ``{"responses_create_params": {"input": [messages...] | "text"}, <answer>}``.
   Messages may carry ``"type": "message"``; content is a string or a list of text parts
   (``{"type": "input_text" | "text" | "output_text", "text": ...}``). Other keys of
   ``responses_create_params`` (tools, sampling settings) are not carried over.
2. Messages: ``{"messages": [...], <answer>}``. A final assistant message, if any, is not part
   of the prompt (it is usually a reference solution).
3. Plain: ``{<problem>, <answer>}``.

``<problem>`` is the first of ``PROBLEM_KEYS`` = ``problem``, ``question``, ``prompt`` that the
record holds with a non-null value; ``<answer>`` likewise from ``ANSWER_KEYS`` =
``expected_answer``, ``answer``, ``solution`` (in that order of precedence, in every shape).
The answer is a string or a number (written with ``str()``), stripped of surrounding
whitespace and never empty. Message roles are ``system``, ``developer``, ``user`` and
``assistant``; the prompt must end with a user message, whose text is the problem. An optional
``id`` (string or integer) names the record.

Output schema (``SCHEMA`` v1)
-----------------------------
``train.jsonl``, ``val.jsonl`` and ``test.jsonl`` (always all three, possibly empty), one
object a line, every field always present, keys in this order::

    {"id": "<dataset>/<record id, or the record's 0-based position in its dataset>",
     "source": "<dataset name>",
     "messages": [{"role": "system"|"developer"|"user"|"assistant", "content": str}, ...],
     "problem": "<text of the last user message>",
     "expected_answer": "<answer as a string>",
     "responses_create_params": {"input": <messages, the same list>},
     "extra_env_info": {"ground_truth": "<expected_answer>"}}

Why this shape: it is one file that both consumers read without conversion.

- NeMo-Gym reads a row's ``responses_create_params`` as the request to the policy and hands the
  whole row to the resource server's verifier, which reads ``expected_answer`` (NeMo-RL's
  ``NemoGymDataset`` passes each line through unchanged).
- NeMo-RL's math path: ``ResponseDataset`` keeps rows that already have ``messages`` as they
  are, and ``math_data_processor`` builds the prompt from ``problem`` and the environment's
  ``extra_env_info.ground_truth`` from ``expected_answer``; ``extra_env_info`` is written too,
  in the form the math environment receives, for readers that take it directly. ``messages``
  holds the prompt only (no answer turn), so use ``math_data_processor``, not the HF-style
  processor that reads the answer from ``messages[1]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from nemotron.data.bad_records import RecordError

SCHEMA = "nemotron.rl_prompts"
SCHEMA_VERSION = 1
FIELDS = ("id", "source", "messages", "problem", "expected_answer", "responses_create_params", "extra_env_info")
PROBLEM_KEYS = ("problem", "question", "prompt")
ANSWER_KEYS = ("expected_answer", "answer", "solution")
ROLES = ("system", "developer", "user", "assistant")
_TEXT_PARTS = ("input_text", "text", "output_text")


class PromptError(RecordError):
    """A record that holds no usable prompt and answer (``reason``: the counter it is skipped under)."""


@dataclass(frozen=True)
class Prompt:
    messages: list[dict[str, str]]
    problem: str
    answer: str
    record_id: str | None


def to_prompt(record: Any) -> Prompt:
    """The prompt messages, problem text, answer and id of one input record, in any shape."""
    if not isinstance(record, dict):
        raise PromptError("bad_record", f"record is a JSON {type(record).__name__}, not an object")
    if record.get("responses_create_params") is not None:
        params = record["responses_create_params"]
        if not isinstance(params, dict) or params.get("input") is None:
            raise PromptError("bad_prompt", "'responses_create_params' must be an object with an 'input'")
        raw = params["input"]
        messages = [{"role": "user", "content": raw}] if isinstance(raw, str) else _messages(raw, "responses_create_params.input")
    elif record.get("messages") is not None:
        messages = _messages(record["messages"], "messages")
        if len(messages) > 1 and messages[-1]["role"] == "assistant":
            messages = messages[:-1]
    else:
        key = _first_key(record, PROBLEM_KEYS)
        if key is None:
            raise PromptError("no_prompt", f"no prompt: none of 'responses_create_params', 'messages', "
                                           f"{', '.join(map(repr, PROBLEM_KEYS))} (keys: {', '.join(list(record)[:8])})")
        if not isinstance(record[key], str):
            raise PromptError("bad_prompt", f"{key!r} is a {_kind(record[key])}, not a string")
        messages = [{"role": "user", "content": record[key]}]
    if not messages or messages[-1]["role"] != "user":
        raise PromptError("bad_prompt", "the prompt must end with a user message")
    problem = messages[-1]["content"]
    if not problem.strip():
        raise PromptError("no_prompt", "the problem (last user message) is empty")
    return Prompt(messages, problem, _answer(record), _record_id(record))


def prompt_identity(problem: str) -> str:
    """What makes two prompts the same: the problem whitespace-collapsed and case-folded."""
    return " ".join(problem.split()).casefold()


def _first_key(record: dict, keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if record.get(k) is not None), None)


def _kind(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "JSON " + names.get(type(value), type(value).__name__)


def _messages(raw: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise PromptError("bad_prompt", f"{where!r} must be a non-empty list of messages")
    messages = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict):
            raise PromptError("bad_prompt", f"{where}[{i}] is a {_kind(message)}, not a message object")
        if message.get("type", "message") != "message":
            raise PromptError("bad_prompt", f"{where}[{i}] is a {message.get('type')!r} item, not a message")
        role = message.get("role")
        if role not in ROLES:
            raise PromptError("bad_prompt", f"{where}[{i}] has role {role!r} (roles: {', '.join(ROLES)})")
        messages.append({"role": role, "content": _content(message.get("content"), f"{where}[{i}]")})
    return messages


def _content(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") in _TEXT_PARTS and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                raise PromptError("bad_prompt", f"{where}.content has a part that is not text: {str(part)[:60]}")
        return "".join(texts)
    raise PromptError("bad_prompt", f"{where}.content is a {_kind(content)}, not a string or list of text parts")


def _answer(record: dict) -> str:
    key = _first_key(record, ANSWER_KEYS)
    if key is None:
        raise PromptError("no_answer", f"no answer: none of {', '.join(map(repr, ANSWER_KEYS))}")
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise PromptError("bad_answer", f"{key!r} is a {_kind(value)}, not a string or number")
    if isinstance(value, float) and not math.isfinite(value):
        raise PromptError("bad_answer", f"{key!r} is {value}, not a finite number")
    text = str(value).strip()
    if not text:
        raise PromptError("no_answer", f"{key!r} is empty")
    return text


def _record_id(record: dict) -> str | None:
    value = record.get("id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise PromptError("bad_id", f"'id' is a {_kind(value)}, not a string or integer")
    return str(value)


def output_row(prompt: Prompt, row_id: str, source: str) -> dict[str, Any]:
    """One output line (the schema in the module docstring)."""
    return {
        "id": row_id,
        "source": source,
        "messages": prompt.messages,
        "problem": prompt.problem,
        "expected_answer": prompt.answer,
        "responses_create_params": {"input": prompt.messages},
        "extra_env_info": {"ground_truth": prompt.answer},
    }
