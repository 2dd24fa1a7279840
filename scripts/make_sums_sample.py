"""Writes the learnable task of the tiny pipeline: sums of small integers, answer in \\boxed{}.

The tiny model (0.4M parameters, a few minutes of CPU) cannot learn the shipped two-digit
products, so the tiny SFT and RL data use one- and two-digit sums instead. Every prompt is a
sum ``a + b`` (a fact) in one of several phrasings; the (fact, phrasing) pairs are split
between the two files, so an RL prompt never appears verbatim in the SFT data (its fact does,
in other words: that is what lets the held-out RL prompts measure what training taught).

- ``pretrain/sums.jsonl``: ``{"id", "text"}`` documents of worked sums, one ``a + b = s`` a line,
  every fact many times: pretraining is where the model learns the facts.
- ``sft/sums.jsonl``: ``{"input", "output"}`` records in two styles, half each, as a teacher that
  does not always show its working writes them: worked, ``a + b = s. \\boxed{s}`` (the sum as
  pretraining wrote it, then the answer in the form the reward reads), and bare, ``\\boxed{s}``.
  The tiny model gets the worked style right about three times as often, so SFT's imitation of
  both leaves room that RL, rewarded for right answers and for showing the working, takes.
- ``rl/sums.jsonl``: ``{"id", "problem", "answer"}`` records, all problems distinct.

    .venv/bin/python scripts/make_sums_sample.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[1] / "nemotron" / "data" / "samples"
PHRASINGS = ("What is {a} plus {b}?", "What is {a} + {b}?", "Add {a} and {b}.", "Compute {a} + {b}.",
             "{a} + {b} = ?", "What is the sum of {a} and {b}?")
SEED = 20261202
DOCUMENTS, LINES = 400, 20


def facts() -> list[tuple[int, int]]:
    """Every sum of two one-digit numbers, and sums of a two-digit and a one-digit number."""
    ones = [(a, b) for a in range(10) for b in range(10)]
    tens = [(a, b) for a in range(10, 20) for b in range(10)]
    return ones + tens


def main() -> None:
    rng = random.Random(SEED)
    with open(SAMPLES / "pretrain" / "sums.jsonl", "w", encoding="utf-8") as f:
        for number in range(DOCUMENTS):
            lines = [f"{a} + {b} = {a + b}" for a, b in (rng.choice(facts()) for _ in range(LINES))]
            f.write(json.dumps({"id": f"sums-{number}", "text": "\n".join(lines)}) + "\n")
    prompts = [(phrasing.format(a=a, b=b), a, b) for a, b in facts() for phrasing in PHRASINGS]
    rng.shuffle(prompts)
    half = len(prompts) // 2
    with open(SAMPLES / "sft" / "sums.jsonl", "w", encoding="utf-8") as f:
        for number, (text, a, b) in enumerate(prompts[:half]):
            working = f"{a} + {b} = {a + b}. " if number % 2 == 0 else ""
            f.write(json.dumps({"input": text, "output": f"{working}\\boxed{{{a + b}}}"}) + "\n")
    with open(SAMPLES / "rl" / "sums.jsonl", "w", encoding="utf-8") as f:
        for number, (text, a, b) in enumerate(prompts[half:]):
            f.write(json.dumps({"id": f"sum-{number:04d}", "problem": text, "answer": a + b}) + "\n")


if __name__ == "__main__":
    main()
