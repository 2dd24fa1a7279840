"""Writes the tiny RL prompt samples shipped in nemotron/data/samples/rl/ (deterministic, offline).

Every prompt has an exact integer answer a verifier can check. One file per input shape that
``nemotron <family> data prep rl`` reads (see nemotron/data/rl_prep.py):

- arithmetic.jsonl: 300 plain records ``{"id", "problem", "answer"}`` (answer a JSON integer),
  all problems distinct.
- chat_math.jsonl: 20 word problems in the messages shape ``{"messages", "answer"|"expected_answer"}``;
  some open with a system message, some end with an assistant solution that prep leaves out
  of the prompt.
- gym_math.jsonl: 20 NeMo-Gym rows ``{"responses_create_params": {"input": [...]}, "expected_answer"}``.
  Rows 1 and 2 repeat arithmetic.jsonl's first two problems exactly (same prompt, same answer:
  dropped as duplicates by prep); row 3 repeats its third problem in other case and spacing
  (the same prompt once normalised: kept, and put in the split of the original). Rows 4, 6, ...
  open with a system message.

    .venv/bin/python scripts/make_rl_sample.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "nemotron" / "data" / "samples" / "rl"
SYSTEM = "Solve the problem. Give the final answer as an integer in \\boxed{}."
NAMES = ["Ada", "Ben", "Chen", "Dana", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jia"]
THINGS = ["apples", "marbles", "stamps", "books", "shells", "coins", "pencils", "stickers"]


def arithmetic(rng: random.Random) -> tuple[str, int]:
    a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 12)
    kind = rng.randrange(6)
    if kind == 0:
        return f"What is {a} plus {b}?", a + b
    if kind == 1:
        return f"What is {a} minus {b}?", a - b
    if kind == 2:
        return f"What is {a} times {b}?", a * b
    if kind == 3:
        return f"Compute ({a} + {b}) * {c}.", (a + b) * c
    if kind == 4:
        return f"Compute {a} * {c} - {b}.", a * c - b
    return f"What is {a * c} divided by {c}?", a


def word_problem(rng: random.Random) -> tuple[str, int, str]:
    name, other = rng.sample(NAMES, 2)
    thing = rng.choice(THINGS)
    a, b, c = rng.randint(5, 60), rng.randint(2, 30), rng.randint(2, 6)
    kind = rng.randrange(3)
    if kind == 0:
        text = f"{name} has {a} {thing} and buys {b} more. How many {thing} does {name} have now?"
        return text, a + b, f"{name} has {a} + {b} = {a + b} {thing}. \\boxed{{{a + b}}}"
    if kind == 1:
        total = a + b
        text = f"{name} had {total} {thing} and gave {b} of them to {other}. How many {thing} are left?"
        return text, a, f"{total} - {b} = {a}. \\boxed{{{a}}}"
    text = f"{name} fills {c} boxes with {b} {thing} each. How many {thing} is that in total?"
    return text, b * c, f"{c} boxes of {b} is {b * c}. \\boxed{{{b * c}}}"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20261127)
    plain, seen = [], set()
    while len(plain) < 300:
        problem, answer = arithmetic(rng)
        if problem not in seen:
            seen.add(problem)
            plain.append({"id": f"arith-{len(plain):04d}", "problem": problem, "answer": answer})
    with open(OUT / "arithmetic.jsonl", "w", encoding="utf-8") as f:
        for record in plain:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")

    with open(OUT / "chat_math.jsonl", "w", encoding="utf-8") as f:
        words: set[str] = set()
        n = 0
        while n < 20:
            text, answer, solution = word_problem(rng)
            if text in words:
                continue
            words.add(text)
            messages = [{"role": "system", "content": SYSTEM}] if n % 3 == 0 else []
            messages.append({"role": "user", "content": text})
            if n % 4 == 1:
                messages.append({"role": "assistant", "content": solution})
            key = "answer" if n % 2 == 0 else "expected_answer"
            f.write(json.dumps({"messages": messages, key: str(answer)}, ensure_ascii=False) + "\n")
            n += 1

    with open(OUT / "gym_math.jsonl", "w", encoding="utf-8") as f:
        rows = [(plain[0]["problem"], plain[0]["answer"]), (plain[1]["problem"], plain[1]["answer"]),
                ("  " + plain[2]["problem"].upper().replace(" ", "   ") + " ", plain[2]["answer"])]
        while len(rows) < 20:
            problem, answer = arithmetic(rng)
            if problem not in seen:
                seen.add(problem)
                rows.append((problem, answer))
        for n, (problem, answer) in enumerate(rows):
            messages = [{"role": "system", "content": SYSTEM}] if n > 2 and n % 2 else []
            messages.append({"role": "user", "content": problem})
            f.write(json.dumps({"responses_create_params": {"input": messages}, "expected_answer": str(answer)},
                               ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
