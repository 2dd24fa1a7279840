"""SFT data prep throughput: worker processes against the same prep in one process.

Builds a chat JSONL corpus (default 10 MB) by repeating the shipped SFT samples (each copy's
question prefixed with its copy number, so no two conversations are equal), then runs
``nemotron.data.sft_prep.prepare_sft`` with the shipped tiny BPE tokenizer and chatml:

  baseline  workers=0: render, tokenize and mask in this process
  ours      workers=N processes, each spooling byte ranges of the input

Prints conversations/s of each, the ratio, and whether the packed Parquet files are identical
(they must be: the output does not depend on the number of workers).

    .venv/bin/python benchmarks/prep_sft.py [--size-mb 10] [--workers 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = [REPO / "nemotron/data/samples/sft" / name for name in ("python_qa.jsonl", "arithmetic.jsonl")]
TOKENIZER = REPO / "nemotron/data/tokenizers/tiny-bpe"


def build_corpus(path: Path, size_mb: float) -> int:
    records = [json.loads(line) for sample in SAMPLES for line in sample.open(encoding="utf-8") if line.strip()]
    target, written, copy, count = size_mb * 1e6, 0, 0, 0
    with path.open("w", encoding="utf-8") as out:
        while written < target:
            for record in records:
                record = json.loads(json.dumps(record))
                if "messages" in record:
                    record["messages"][0]["content"] = f"[copy {copy}] {record['messages'][0]['content']}"
                else:
                    record["input"] = f"[copy {copy}] {record['input']}"
                line = json.dumps(record) + "\n"
                out.write(line)
                written += len(line.encode("utf-8"))
                count += 1
            copy += 1
    return count


def prep(corpus: Path, out: Path, workers: int) -> tuple[float, int]:
    from nemotron.data.chat import load_template
    from nemotron.data.sft_prep import SFTSettings, prepare_sft
    from nemotron.data.text_sources import DatasetSpec, resolve_files

    dataset = DatasetSpec(name="chat", path=str(corpus))
    settings = SFTSettings(output_dir=str(out), tokenizer_path=str(TOKENIZER), template=load_template("chatml", TOKENIZER),
                           pack_size=512, algorithm="first_fit_shuffle", seed=1234, split_ratios=(0.9, 0.05, 0.05),
                           on_error="fail", overlong="truncate", packs_per_shard=1000, workers=workers)
    started = time.perf_counter()
    outcome = prepare_sft([dataset], resolve_files(dataset), settings, show_progress=False)
    return time.perf_counter() - started, outcome.conversations


def digest(root: Path) -> str:
    sha = hashlib.sha256()
    for path in sorted(root.rglob("*.parquet")):
        sha.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return sha.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="prep-sft-bench-") as scratch:
        corpus = Path(scratch) / "chat.jsonl"
        records = build_corpus(corpus, args.size_mb)
        print(f"corpus: {corpus.stat().st_size / 1e6:.1f} MB, {records} conversations")
        base_s, base_n = prep(corpus, Path(scratch) / "baseline", 0)
        ours_s, ours_n = prep(corpus, Path(scratch) / "ours", args.workers)
        print(f"baseline (workers=0):  {base_n / base_s:10.0f} conversations/s  ({base_s:.1f} s)")
        print(f"ours (workers={args.workers}):     {ours_n / ours_s:10.0f} conversations/s  ({ours_s:.1f} s)")
        print(f"ratio ours/baseline: {base_s / ours_s:.2f}x")
        same = digest(Path(scratch) / "baseline") == digest(Path(scratch) / "ours")
        print(f"identical Parquet output: {same}")


if __name__ == "__main__":
    main()
