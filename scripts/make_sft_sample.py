"""Writes the tiny SFT samples shipped in nemotron/data/samples/sft/ (deterministic, offline).

- python_qa.jsonl: OpenAI-style conversations ("messages") about Python language topics, built
  from CPython's pydoc_data.topics (the Python Language Reference, PSF License): a question,
  the first paragraph of the topic as the answer, often a follow-up turn, some with a system
  prompt, some with reasoning_content, some with a tool call and tool result.
- arithmetic.jsonl: instruction records ({"input", "output"}) with exact answers.

    .venv/bin/python scripts/make_sft_sample.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pydoc_data.topics

OUT = Path(__file__).resolve().parents[1] / "nemotron" / "data" / "samples" / "sft"
SYSTEM = "You are a concise assistant that explains Python."
TOOLS = [{"type": "function", "function": {
    "name": "lookup_topic", "description": "Look up a topic in the Python Language Reference.",
    "parameters": {"type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]}}}]


def paragraphs(text: str) -> list[str]:
    parts = [" ".join(p.split()) for p in text.split("\n\n")]
    return [p for p in parts if len(p) > 60 and not p.startswith(("*", "=", "-")) and "::=" not in p]


def conversation(topic: str, paras: list[str], rng: random.Random) -> dict:
    name = topic.replace("-", " ")
    messages = []
    if rng.random() < 0.4:
        messages.append({"role": "system", "content": SYSTEM})
    messages.append({"role": "user", "content": f"What does the Python reference say about {name}?"})
    answer = {"role": "assistant", "content": paras[0][:600]}
    kind = rng.random()
    if kind < 0.2:
        answer["reasoning_content"] = f"The user asks about {name}; the reference's first paragraph answers it."
    if kind > 0.85:
        messages.append({"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "lookup_topic", "arguments": json.dumps({"topic": topic})}}]})
        messages.append({"role": "tool", "content": paras[0][:300]})
    messages.append(answer)
    if len(paras) > 1 and rng.random() < 0.5:
        messages.append({"role": "user", "content": "Can you tell me more?"})
        messages.append({"role": "assistant", "content": paras[1][:600]})
    record = {"messages": messages}
    if kind > 0.85:
        record["tools"] = TOOLS
    return record


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20261126)
    with open(OUT / "python_qa.jsonl", "w", encoding="utf-8") as f:
        for topic in sorted(pydoc_data.topics.topics):
            paras = paragraphs(pydoc_data.topics.topics[topic])
            if paras:
                f.write(json.dumps(conversation(topic, paras, rng), ensure_ascii=False) + "\n")
    with open(OUT / "arithmetic.jsonl", "w", encoding="utf-8") as f:
        for _ in range(200):
            a, b = rng.randint(2, 99), rng.randint(2, 99)
            op, value = rng.choice([("plus", a + b), ("minus", a - b), ("times", a * b)])
            f.write(json.dumps({"input": f"What is {a} {op} {b}?", "output": f"{a} {op} {b} is {value}."}) + "\n")


if __name__ == "__main__":
    main()
