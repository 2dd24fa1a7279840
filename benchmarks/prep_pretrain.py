"""Stage-0 pretraining data prep throughput: ours vs a Megatron-LM-style baseline vs the tokenizer alone.

Builds a JSONL corpus (default 50 MB) by repeating the shipped pretrain samples, then times, in
tokens/s, with the shipped tiny BPE tokenizer:

  ours      nemotron.data.pretrain_prep.prepare (32 units, --workers processes, 98/1/1 splits)
  baseline  the way Megatron-LM's tools/preprocess_data.py works: multiprocessing.Pool workers
            json.loads and encode one document each (pool.imap, chunksize 32), the parent writes
            every document through megatron.core's IndexedDatasetBuilder
  ceiling   Tokenizer.encode_batch (Rust parallelism) over the texts already in memory, batches
            of 1024, nothing written

--memory runs ours alone in a fresh subprocess on the corpus and on a 10x larger one and reports
the peak RSS of the process tree (parent + workers, sampled every 50 ms); its default corpus is
20 MB (so 20 MB and 200 MB) unless --size-mb is given.

    .venv/bin/python benchmarks/prep_pretrain.py [--size-mb 50] [--workers 2] [--repeat 1]
    .venv/bin/python benchmarks/prep_pretrain.py --memory [--size-mb 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLES = [REPO / "nemotron/data/samples/pretrain" / name for name in ("python_docs.jsonl", "python_docstrings.jsonl")]
TOKENIZER = REPO / "nemotron/data/tokenizers/tiny-bpe/tokenizer.json"
EOD_ID = 0  # <|endoftext|> in the tiny BPE tokenizer


def build_corpus(path: Path, size_mb: float) -> None:
    """Write copies of the samples, each document prefixed with its copy number, up to size_mb."""
    texts = [json.loads(line)["text"] for sample in SAMPLES for line in sample.open(encoding="utf-8") if line.strip()]
    target, written, copy = size_mb * 1e6, 0, 0
    with path.open("w", encoding="utf-8") as out:
        while written < target:
            for text in texts:
                line = json.dumps({"text": f"[copy {copy}] {text}"}) + "\n"
                out.write(line)
                written += len(line.encode("utf-8"))
            copy += 1


class Clock:
    """Wall and CPU seconds since creation. CPU counts this process and its finished children,
    so CPU well under (cores x wall) shows that other load took the cores."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), self.cpu_seconds()

    @staticmethod
    def cpu_seconds() -> float:
        times = os.times()
        return times.user + times.system + times.children_user + times.children_system

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, self.cpu_seconds() - self.cpu


# -- ours -------------------------------------------------------------------------------------

def run_ours(corpus: Path, out_dir: Path, workers: int) -> tuple[int, Clock]:
    from nemotron.data.pretrain_prep import TokenizeSettings, plan, prepare
    from nemotron.data.text_sources import DatasetSpec

    clock = Clock()
    units, files = plan([DatasetSpec(name="bench", path=str(corpus))], shards_per_dataset=32)
    settings = TokenizeSettings(output_dir=str(out_dir), tokenizer_path=str(TOKENIZER.parent),
                                split_ratios=(0.98, 0.01, 0.01), on_error="fail", batch_docs=1024, add_bos=False,
                                append_eod=True)
    outcome = prepare(units, files, settings, workers=workers, show_progress=False)
    return outcome.tokens, clock


# -- baseline: Megatron-LM tools/preprocess_data.py style -------------------------------------

class Encoder:
    """One document per call, as Megatron-LM's Encoder: json.loads, encode, append EOD."""

    def initializer(self) -> None:
        from tokenizers import Tokenizer

        Encoder.tokenizer = Tokenizer.from_file(str(TOKENIZER))

    def encode(self, line: str) -> tuple[list[int], int]:
        text = json.loads(line)["text"]
        ids = Encoder.tokenizer.encode(text).ids
        ids.append(EOD_ID)
        return ids, len(line)


def run_baseline(corpus: Path, out_dir: Path, workers: int) -> tuple[int, Clock]:
    import torch

    with warnings.catch_warnings():  # "Transformer Engine and Apex are not installed" on import
        warnings.simplefilter("ignore")
        from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    clock = Clock()
    encoder = Encoder()
    prefix = out_dir / "bench_text_document"
    builder = IndexedDatasetBuilder(f"{prefix}.bin", dtype=np.uint16)
    tokens = 0
    with open(corpus, encoding="utf-8") as fin, multiprocessing.Pool(workers, initializer=encoder.initializer) as pool:
        for ids, _ in pool.imap(encoder.encode, fin, chunksize=32):
            builder.add_document(torch.tensor(ids), [len(ids)])
            tokens += len(ids)
    builder.finalize(f"{prefix}.idx")
    return tokens, clock


# -- ceiling ----------------------------------------------------------------------------------

def run_ceiling(texts: list[str]) -> tuple[int, Clock]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(TOKENIZER))
    clock = Clock()
    tokens = 0
    for i in range(0, len(texts), 1024):
        batch = texts[i:i + 1024]
        tokens += sum(len(e.ids) for e in tokenizer.encode_batch(batch)) + len(batch)  # + one EOD each
    return tokens, clock


def throughput(corpus: Path, tmp: Path, workers: int, repeat: int) -> None:
    texts = [json.loads(line)["text"] for line in corpus.open(encoding="utf-8")]
    print(f"corpus: {corpus.stat().st_size / 1e6:.1f} MB, {len(texts)} documents, workers={workers}, best of {repeat}")
    variants = {  # baseline first: it forks, and a fork after the ceiling's Rust threads ran disables them
        "baseline": lambda out: run_baseline(corpus, out, workers),
        "ours": lambda out: run_ours(corpus, out, workers),
        "ceiling": lambda out: run_ceiling(texts),
    }
    rates = {}
    for name, run in variants.items():
        for round_ in range(repeat):
            out = tmp / f"out-{name}-{round_}"
            out.mkdir()
            tokens, clock = run(out)
            wall, cpu = clock.read()
            rates[name] = max(rates.get(name, 0.0), tokens / wall)
            print(f"{name:8s}: {tokens:>11,d} tokens in {wall:6.2f} s = {tokens / wall:>10,.0f} tokens/s"
                  f"  (CPU {cpu:6.2f} s: this process and its children)")
            shutil.rmtree(out)
    print(f"ours / baseline: {rates['ours'] / rates['baseline']:.2f}x (target >= 3)")
    print(f"ours / ceiling:  {rates['ours'] / rates['ceiling']:.2f}x (target >= 0.8)")


# -- memory -----------------------------------------------------------------------------------

def peak_tree_rss(cmd: list[str]) -> int:
    """Peak of the summed RSS of a command's process and all its descendants (50 ms sampling)."""
    import psutil

    proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        total = 0
        try:
            for p in [proc, *proc.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
        except psutil.NoSuchProcess:
            pass
        peak = max(peak, total)
        time.sleep(0.05)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit status {proc.returncode}")
    return peak


def memory_mode(tmp: Path, size_mb: float, workers: int) -> None:
    print(f"memory: ours alone in a fresh subprocess, {size_mb:g} MB vs {10 * size_mb:g} MB corpus, workers={workers}"
          " (default 20 MB here, smaller than the 50 MB throughput run, to keep it quick)")
    peaks = []
    for mb in (size_mb, 10 * size_mb):
        corpus = tmp / f"corpus-{mb:g}mb.jsonl"
        build_corpus(corpus, mb)
        cmd = [sys.executable, __file__, "--ours-only", str(corpus), "--out", str(tmp / f"out-mem-{mb:g}"),
               "--workers", str(workers)]
        peaks.append(peak_tree_rss(cmd))
        print(f"ours on {mb:g} MB: peak RSS of the process tree {peaks[-1] / 2**20:.0f} MiB")
        corpus.unlink()
        shutil.rmtree(tmp / f"out-mem-{mb:g}")
    print(f"peak memory ratio {10 * size_mb:g} MB / {size_mb:g} MB: {peaks[1] / peaks[0]:.2f} (target <= 1.2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=float, default=None, help="corpus size (default 50; 20 with --memory)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each variant; the fastest counts")
    parser.add_argument("--memory", action="store_true", help="peak RSS of ours at --size-mb and 10x --size-mb")
    parser.add_argument("--ours-only", metavar="CORPUS", help=argparse.SUPPRESS)  # the --memory subprocess
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ours_only:
        tokens, clock = run_ours(Path(args.ours_only), Path(args.out), args.workers)
        print(f"{tokens} tokens in {clock.read()[0]:.2f} s")
        return

    print(f"{os.cpu_count()} CPUs, load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="prep_pretrain_") as tmp_name:
        tmp = Path(tmp_name)
        if args.memory:
            memory_mode(tmp, args.size_mb or 20, args.workers)
        else:
            build_corpus(tmp / "corpus.jsonl", args.size_mb or 50)
            throughput(tmp / "corpus.jsonl", tmp, args.workers, args.repeat)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
