"""Reward functions for GRPO, pluggable through config (``_target_``).

Each reward is a callable object with TRL's reward-function signature,
``reward(prompts, completions, **columns) -> list[float]``, where ``completions`` are strings
or chat messages and ``columns`` carries the data set's fields (``expected_answer``).

- :class:`MathVerifier`: 1.0 when the completion's final answer equals the expected answer.
  The final answer is the last ``\\boxed{...}`` if there is one, else the last number. Numbers
  compare by value (``1,000`` == ``1000.0``; fractions ``3/4`` == ``0.75``); other answers
  compare as text, ignoring case, spaces, ``$`` and a trailing period.
- :class:`FormatReward`: 1.0 when the completion matches a pattern (by default: it gives its
  final answer in ``\\boxed{}``).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")


def completion_text(completion: Any) -> str:
    """The text of a completion given as a string or as chat messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(m.get("content") or "" for m in completion if isinstance(m, dict))
    if isinstance(completion, dict):
        return completion.get("content") or ""
    return str(completion)


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}``, braces balanced."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed{")
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            if depth == 0:
                return text[i:j]
            depth -= 1
    return None


def final_answer(text: str) -> str | None:
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


def as_number(text: str) -> Fraction | None:
    cleaned = text.strip().replace(",", "").replace("$", "").rstrip(".").strip()
    try:
        return Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def answers_match(predicted: str, expected: str) -> bool:
    left, right = as_number(predicted), as_number(expected)
    if left is not None and right is not None:
        return left == right
    normalise = lambda s: " ".join(s.replace("$", "").strip().rstrip(".").lower().split())  # noqa: E731
    return normalise(predicted) == normalise(expected)


class MathVerifier:
    """Exact-match reward on the final answer (see the module docstring)."""

    __name__ = "math_verify"

    def __init__(self, answer_field: str = "expected_answer"):
        self.answer_field = answer_field

    def __call__(self, prompts: list, completions: list, **columns: Any) -> list[float]:
        expected = columns.get(self.answer_field)
        if expected is None:
            raise KeyError(f"math_verify needs the data column {self.answer_field!r}")
        rewards = []
        for completion, answer in zip(completions, expected):
            predicted = final_answer(completion_text(completion))
            rewards.append(1.0 if predicted is not None and answers_match(predicted, str(answer)) else 0.0)
        return rewards


class FormatReward:
    """1.0 for completions that match ``pattern`` (a regular expression), else 0.0."""

    __name__ = "format"

    def __init__(self, pattern: str = r"\\boxed\{[^{}]+\}"):
        self.pattern = re.compile(pattern, re.DOTALL)

    def __call__(self, prompts: list, completions: list, **columns: Any) -> list[float]:
        return [1.0 if self.pattern.search(completion_text(c)) else 0.0 for c in completions]
