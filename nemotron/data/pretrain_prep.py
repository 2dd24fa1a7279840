"""Stage-0 data prep: raw text -> sharded Megatron bin/idx + a per-split blend.json.

Each work unit (a byte range of one dataset, see text_sources) is tokenized by a worker
process in batches through the Rust tokenizer and streamed into one shard per split. A unit
is done when its marker file (``units/<dataset>/part-NNNNN.json``) exists; markers are written
after the shards, by rename, so a killed run resumes with exactly the missing units and ends
byte-identical to an uninterrupted one. ``finalize`` reads the markers and writes blend.json.

Layout of an output directory::

    shards/<dataset>/<split>/part-NNNNN.{bin,idx}
    units/<dataset>/part-NNNNN.json
    blend.json            {"train": [w, prefix, ...], "valid": [...], "test": [...]}
"""

from __future__ import annotations

import json
import os
import queue as queue_module
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np

from nemo_runspec import atomic
from nemo_runspec.errors import ConfigError, DataError
from nemo_runspec.progress import RateProgress
from nemotron.data.bad_records import SkipCounter
from nemotron.data.files import file_sha256
from nemotron.data.indexed_dataset import IndexedDatasetWriter, token_dtype
from nemotron.data.splits import SPLITS, refuse_empty_splits, split_by_hash
from nemotron.data.text_sources import (DatasetSpec, SourceFile, WorkUnit, describe_files, iter_documents, plan_units,
                                        resolve_files)
from nemotron.data.tokenizer import load_tokenizer
from nemotron.kit.artifacts.common import SourceInfo

BLEND_FILE = "blend.json"


@dataclass(frozen=True)
class TokenizeSettings:
    """What a worker needs besides its unit (picklable)."""

    output_dir: str
    tokenizer_path: str
    split_ratios: tuple[float, float, float]  # train, valid, test; sums to 1
    on_error: str
    batch_docs: int
    add_bos: bool
    append_eod: bool


@dataclass
class PrepOutcome:
    output_dir: Path
    blend_path: Path | None  # None for a slice that leaves finalizing to a later step
    units_total: int
    units_run: int
    units_reused: int
    documents: int = 0
    tokens: int = 0
    elapsed_s: float = 0.0
    split_tokens: dict[str, int] = field(default_factory=dict)
    split_documents: dict[str, int] = field(default_factory=dict)
    num_shards: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    sources: list[SourceInfo] = field(default_factory=list)


def plan(datasets: list[DatasetSpec], shards_per_dataset: int, resolve_ref=None) -> tuple[list[WorkUnit], list[SourceFile]]:
    if not datasets:
        raise ConfigError("data_prep.blend is empty", hint="list at least one dataset (name, path, weight)")
    if sum(d.weight for d in datasets) <= 0:
        raise ConfigError("data_prep.blend weights are all zero", hint="give at least one dataset a positive weight")
    if len({d.name for d in datasets}) != len(datasets):
        raise ConfigError("data_prep.blend has two datasets with the same name")
    if shards_per_dataset < 1:
        raise ConfigError(f"data_prep.shards_per_dataset must be >= 1, got {shards_per_dataset}")
    units, files = [], []
    for spec in datasets:
        spec_files = resolve_files(spec, resolve_ref)
        files += spec_files
        units += plan_units(spec, spec_files, shards_per_dataset)
    return units, files


def prepare(
    units: list[WorkUnit],
    files: list[SourceFile],
    settings: TokenizeSettings,
    *,
    workers: int = 2,
    slice_count: int = 1,
    slice_index: int = 0,
    finalize: bool = True,
    show_progress: bool = True,
) -> PrepOutcome:
    """Tokenize this slice's missing units, then (``finalize``) write blend.json."""
    if not 0 <= slice_index < slice_count:
        raise ConfigError(f"shard index {slice_index} is outside 0..{slice_count - 1}")
    output_dir = Path(settings.output_dir)
    mine = [u for i, u in enumerate(units) if i % slice_count == slice_index]
    pending = [u for u in mine if _read_marker(output_dir, u) is None]
    outcome = PrepOutcome(output_dir, None, len(units), len(pending), len(mine) - len(pending))
    with RateProgress("tokenizing", total=len(mine), counters=("docs", "tokens"), enabled=show_progress) as bar:
        bar.unit_done(len(mine) - len(pending))
        _run_units(pending, settings, workers, bar)
    outcome.documents, outcome.tokens = bar.counters["docs"], bar.counters["tokens"]
    outcome.elapsed_s = bar.elapsed
    if finalize:
        finalize_blend(outcome, units, files, settings.split_ratios)
    return outcome


# -- workers ------------------------------------------------------------------------------

_progress_queue = None


def _init_worker(progress_queue, threads: int) -> None:
    global _progress_queue
    _progress_queue = progress_queue
    # Each worker's Rust tokenizer gets its share of the cores instead of all of them.
    os.environ["RAYON_NUM_THREADS"] = str(threads)


def _run_units(units: list[WorkUnit], settings: TokenizeSettings, workers: int, bar: RateProgress) -> None:
    if not units:
        return
    if workers <= 0:  # in-process: for debugging and small tests
        for unit in units:
            tokenize_unit(unit, settings, report=lambda docs, tokens: bar.add(docs=docs, tokens=tokens))
            bar.unit_done()
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    progress_queue = context.Queue()
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(progress_queue, threads)) as pool:
        futures = {pool.submit(tokenize_unit, unit, settings) for unit in units}
        try:
            while futures:
                done, futures = wait(futures, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(progress_queue, bar)
                for future in done:
                    future.result()  # re-raises a worker's error here
                    bar.unit_done()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        _drain(progress_queue, bar)


def _drain(progress_queue, bar: RateProgress) -> None:
    while True:
        try:
            docs, tokens = progress_queue.get_nowait()
        except queue_module.Empty:
            return
        bar.add(docs=docs, tokens=tokens)


def tokenize_unit(unit: WorkUnit, settings: TokenizeSettings, report=None) -> dict:
    """Tokenize one unit into its shards and write its marker; returns the marker."""
    report = report or _queue_report
    loaded = load_tokenizer(settings.tokenizer_path)
    dtype = token_dtype(loaded.vocab_size)
    output_dir = Path(settings.output_dir)
    writers: dict[str, IndexedDatasetWriter] = {}
    skipped = SkipCounter()
    batch: list[str] = []

    def flush() -> None:
        if not batch:
            return
        encodings = loaded.tokenizer.encode_batch_fast(batch, add_special_tokens=False)
        ids = [e.ids for e in encodings]
        tokens, lengths = _with_specials(ids, loaded, settings, dtype)
        splits = _assign_splits(batch, unit.dataset.split, settings.split_ratios)
        for code, split in enumerate(SPLITS):
            chosen = splits == code
            if not chosen.any():
                continue
            if split not in writers:
                writers[split] = IndexedDatasetWriter(_shard_prefix(output_dir, unit, split), dtype)
            writers[split].add_documents(tokens[np.repeat(chosen, lengths)], lengths[chosen])
        report(len(batch), int(tokens.size))
        batch.clear()

    try:
        for segment in unit.segments:
            for text in iter_documents(segment, unit.dataset.text_field, settings.on_error, skipped):
                batch.append(text)
                if len(batch) >= settings.batch_docs:
                    flush()
        flush()
        for writer in writers.values():
            writer.commit()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    marker = {
        "unit": unit.key,
        "segments": [[s.file.path, s.start, s.end] for s in unit.segments],
        "splits": {
            split: {"prefix": str(w.prefix.relative_to(output_dir)), "documents": w.num_documents, "tokens": w.num_tokens}
            for split, w in sorted(writers.items(), key=lambda item: SPLITS.index(item[0]))
        },
        "skipped": dict(sorted(skipped.items())),
    }
    atomic.write_json(_marker_path(output_dir, unit), marker)
    return marker


def _queue_report(docs: int, tokens: int) -> None:
    if _progress_queue is not None:
        _progress_queue.put((docs, tokens))


def _with_specials(ids: list[list[int]], loaded, settings: TokenizeSettings, dtype) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter(map(len, ids), np.int64, len(ids))
    tokens = np.fromiter(chain.from_iterable(ids), dtype, int(lengths.sum()))
    if settings.add_bos:
        if loaded.bos_id is None:
            raise ConfigError("data_prep.add_bos is set but the tokenizer has no bos_token")
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        tokens = np.insert(tokens, starts, loaded.bos_id)
        lengths = lengths + 1
    if settings.append_eod:
        tokens = np.insert(tokens, np.cumsum(lengths), loaded.eod_id)
        lengths = lengths + 1
    return tokens, lengths


def _assign_splits(texts: list[str], fixed: str | None, ratios: tuple[float, float, float]) -> np.ndarray:
    """Index in SPLITS per document, from a hash of its text (see ``split_by_hash``)."""
    if fixed is not None:
        return np.full(len(texts), SPLITS.index(fixed), np.int8)
    return np.fromiter((split_by_hash(text.encode("utf-8", "surrogatepass"), ratios) for text in texts), np.int8,
                       count=len(texts))


# -- markers, finalize ----------------------------------------------------------------------

def _shard_prefix(output_dir: Path, unit: WorkUnit, split: str) -> Path:
    return output_dir / "shards" / unit.dataset.name / split / f"part-{unit.index:05d}"


def _marker_path(output_dir: Path, unit: WorkUnit) -> Path:
    return output_dir / "units" / unit.dataset.name / f"part-{unit.index:05d}.json"


def _read_marker(output_dir: Path, unit: WorkUnit) -> dict | None:
    """The unit's marker if the unit is complete (marker valid and its shards present)."""
    try:
        marker = json.loads(_marker_path(output_dir, unit).read_text(encoding="utf-8"))
        if marker["segments"] != [[s.file.path, s.start, s.end] for s in unit.segments]:
            return None  # the sources changed under the same output directory
        for info in marker["splits"].values():
            if not (output_dir / f"{info['prefix']}.idx").is_file():
                return None
        return marker
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        return None


def finalize_blend(outcome: PrepOutcome, units: list[WorkUnit], files: list[SourceFile],
                   split_ratios: tuple[float, float, float]) -> None:
    """Check every unit is done and every split asked for holds documents, write blend.json and
    fill in the outcome's totals."""
    output_dir = outcome.output_dir
    markers = [(unit, _read_marker(output_dir, unit)) for unit in units]
    missing = [unit.key for unit, marker in markers if marker is None]
    if missing:
        raise DataError(
            f"{len(missing)} of {len(units)} units are not prepared yet (first: {missing[0]}) in {output_dir}",
            hint="run every --shard-index of the --num-shards slices before --finalize",
        )
    per_dataset_split: Counter[tuple[str, str]] = Counter()
    for unit, marker in markers:
        for split, info in marker["splits"].items():
            per_dataset_split[unit.dataset.name, split] += info["tokens"]
    blend: dict[str, list] = {split: [] for split in SPLITS}
    skipped: Counter[str] = Counter()
    for unit, marker in markers:
        skipped.update(marker["skipped"])
        for split, info in marker["splits"].items():
            if info["tokens"] == 0:
                continue
            weight = unit.dataset.weight * info["tokens"] / per_dataset_split[unit.dataset.name, split]
            blend[split] += [weight, str(output_dir / info["prefix"])]
            outcome.split_tokens[split] = outcome.split_tokens.get(split, 0) + info["tokens"]
            outcome.split_documents[split] = outcome.split_documents.get(split, 0) + info["documents"]
            outcome.num_shards += 1
    outcome.skipped = dict(sorted(skipped.items()))
    _refuse_empty(outcome, units, files, split_ratios)
    outcome.sources = _describe_sources(units, files)
    outcome.blend_path = output_dir / BLEND_FILE
    atomic.write_json(outcome.blend_path, blend)


def _refuse_empty(outcome: PrepOutcome, units: list[WorkUnit], files: list[SourceFile],
                  split_ratios: tuple[float, float, float]) -> None:
    """No blend.json (so nothing logged) without documents in train and in every split
    data_prep.splits gives a share; those shares apply to the datasets without a split."""
    inputs, documents = describe_files(files), sum(outcome.split_documents.values())
    if not documents:
        raise DataError(f"no documents in {inputs} (skipped: {outcome.skipped or 'none'})",
                        hint="check data_prep.blend: the files are empty or every record was skipped")
    hashed = any(unit.dataset.split is None for unit in units)
    asked = {split: f"{ratio:g}" for split, ratio in zip(SPLITS, split_ratios) if ratio > 0 and hashed}
    refuse_empty_splits(outcome.split_documents, asked, f"{documents} documents of {inputs}")


def _describe_sources(units: list[WorkUnit], files: list[SourceFile]) -> list[SourceInfo]:
    from concurrent.futures import ThreadPoolExecutor

    specs = {unit.dataset.name: unit.dataset for unit in units}
    with ThreadPoolExecutor(4) as pool:  # hashlib releases the GIL
        digests = list(pool.map(lambda f: file_sha256(f.path), files))
    return [
        SourceInfo(name=f.dataset, uri=f.input_uri, weight=specs[f.dataset].weight, split=specs[f.dataset].split,
                   num_bytes=f.size, sha256=digest)
        for f, digest in zip(files, digests) if f.dataset in specs
    ]
