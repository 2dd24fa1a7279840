"""Entry point of an accuracy evaluation: ``python -m nemotron.rl.generate_eval JOB.json``.

``eval=accuracy``: a Hugging Face model (an export of a Megatron checkpoint, an RL policy or an
imported model) answers the prompts of a SplitJsonlDataArtifact split through its own chat
template, greedily, and optionally ``samples`` times more at a temperature (pass@k). Every
completion is scored with the reward functions RL uses (``eval.rewards``, Hydra ``_target_``
specs; the first one decides ``correct``), and whether it ends the assistant turn with the
template's end-of-turn token before ``max_new_tokens`` (the format rate). Writes one JSONL
line per prompt to ``completions.jsonl`` and the summary to the job's result file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

COMPLETIONS_FILE = "completions.jsonl"
_MARK = "\u2063ANSWER\u2063"  # a text no template writes, to find what follows an assistant turn


def read_prompts(path: Path, limit: int) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
        if len(rows) == limit:
            break
    return rows


def end_of_turn_id(tokenizer) -> int:
    """The first token the chat template writes after an assistant message's content."""
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "q"}, {"role": "assistant", "content": _MARK}],
                                             tokenize=False)
    after = rendered.split(_MARK, 1)[1] if _MARK in rendered else ""
    ids = tokenizer(after, add_special_tokens=False)["input_ids"] if after else []
    if ids:
        return int(ids[0])
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer's chat template writes nothing after an assistant turn and it has no eos token")
    return int(tokenizer.eos_token_id)


def generate(model, tokenizer, prompts: list[list[dict]], *, max_new_tokens: int, batch_size: int, stop: list[int],
             sample: bool = False, temperature: float = 1.0, bar=None) -> list[tuple[str, bool]]:
    """(completion text, ended its turn) for every prompt, batch by batch, left-padded."""
    import torch

    turn_end = stop[0]
    out = []
    for first in range(0, len(prompts), batch_size):
        texts = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False)
                 for p in prompts[first:first + batch_size]]
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.no_grad():
            generated = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=sample,
                                       temperature=temperature if sample else None, top_p=None, top_k=None,
                                       eos_token_id=stop, pad_token_id=tokenizer.pad_token_id)
        for row in generated[:, encoded["input_ids"].shape[1]:].tolist():
            ended = turn_end in row
            kept = row[:row.index(turn_end)] if ended else row
            out.append((tokenizer.decode(kept, skip_special_tokens=True), ended))
        if bar is not None:
            bar.add(completions=len(texts))
            bar.unit_done(len(texts))
    return out


def score(functions: list, prompts: list, completions: list[str], answers: list[str]) -> list[list[float]]:
    """Each reward function's value for every completion (TRL's reward signature)."""
    columns = {"expected_answer": answers}
    return [[float(v) for v in function(prompts, completions, **columns)] for function in functions]


def accuracy(job: dict[str, Any]) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nemo_runspec.progress import RateProgress
    from nemotron.rl.trl_grpo import rewards_from

    evaluation = job["eval"]
    torch.manual_seed(int(evaluation["seed"]))
    cuda = torch.cuda.is_available() and evaluation.get("device", "auto") != "cpu"
    tokenizer = AutoTokenizer.from_pretrained(job["model"])
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(job["model"], torch_dtype=torch.float32).to("cuda" if cuda else "cpu")
    model.eval()
    rows = read_prompts(Path(job["prompts"]), int(evaluation["max_prompts"]))
    prompts = [row["messages"] for row in rows]
    answers = [str(row["expected_answer"]) for row in rows]
    turn_end = end_of_turn_id(tokenizer)
    eos = tokenizer.eos_token_id
    stop = [turn_end] if eos in (None, turn_end) else [turn_end, eos]  # the turn's end first: generate() reads it
    functions, _ = rewards_from(evaluation["rewards"])
    names = [f.__name__ for f in functions]
    k = int(evaluation["samples"])
    settings = dict(max_new_tokens=int(evaluation["max_new_tokens"]), batch_size=int(evaluation["batch_size"]),
                    stop=stop)
    with RateProgress(f"eval {job['split']} accuracy", total=len(prompts) * (1 + k), counters=("completions",),
                      enabled=bool(job.get("show_progress"))) as bar:
        greedy = generate(model, tokenizer, prompts, bar=bar, **settings)
        sampled = [generate(model, tokenizer, prompts, bar=bar, sample=True,
                            temperature=float(evaluation["temperature"]), **settings) for _ in range(k)]
    rewards = score(functions, prompts, [text for text, _ in greedy], answers)
    sampled_correct = [score(functions[:1], prompts, [text for text, _ in draw], answers)[0] for draw in sampled]

    lines = []
    for index, row in enumerate(rows):
        line = {"id": row.get("id", index), "prompt": prompts[index][-1]["content"], "expected_answer": answers[index],
                "completion": greedy[index][0], "ended_turn": greedy[index][1],
                "rewards": {name: rewards[n][index] for n, name in enumerate(names)},
                "correct": rewards[0][index] >= 1.0}
        if k:
            line["samples"] = [{"completion": draw[index][0], "correct": sampled_correct[d][index] >= 1.0}
                               for d, draw in enumerate(sampled)]
        lines.append(line)
    (Path(job["out"]) / COMPLETIONS_FILE).write_text("".join(json.dumps(line, ensure_ascii=False) + "\n"
                                                             for line in lines), encoding="utf-8")
    count = max(len(rows), 1)
    result = {"prompts": len(rows), "accuracy": sum(line["correct"] for line in lines) / count,
              "format_rate": sum(line["ended_turn"] for line in lines) / count,
              "rewards": {name: sum(rewards[n]) / count for n, name in enumerate(names)},
              "completions": str(Path(job["out"]) / COMPLETIONS_FILE)}
    if k:
        result["pass_at_k"] = sum(any(s["correct"] for s in line["samples"]) for line in lines) / count
        result["sampled_accuracy"] = sum(sum(draw) for draw in sampled_correct) / (count * k)
    return result


def main(argv: list[str]) -> int:
    from nemo_runspec import atomic
    from nemo_runspec.errors import run_job_file
    from nemo_runspec.quiet import quiet_third_party

    quiet_third_party()
    return run_job_file(argv, lambda job: atomic.write_json(Path(job["result"]), accuracy(job)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
