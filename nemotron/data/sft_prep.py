"""Stage-1 data prep: conversations -> loss-masked sequences packed into Parquet.

Three passes, none of which holds the data set's tokens in memory:

1. spool: every conversation is rendered, tokenized and masked (see ``chat``), cut or dropped
   when longer than ``pack_size``, and appended to its split's spool files (``spool/``:
   int32 tokens, uint8 masks, int64 offsets). Only lengths stay in memory. Byte ranges of the
   inputs (work units; ``4 x workers`` per dataset, one in-process) are spooled each into its
   own files, by ``workers`` processes, then appended in input order: the output does not
   depend on ``workers``. A killed run's completed units are kept for the rerun.
2. pack: the lengths of each split are bin-packed (see ``packing``).
3. materialise: packs are written shard by shard (``<split>/part-NNNNN.parquet``), each by
   atomic rename; a rerun skips the shards that exist.

The shards are :mod:`nemotron.data.packed_parquet`'s format, the mask aligned with the tokens
(``loss_mask[i] == 1`` means token ``i`` is a target). A trainer predicts token ``i`` from
positions ``< i`` of the same sub-sequence, so for a sub-sequence ``[s, e)`` the labels are
``input_ids[s+1:e]`` with mask ``loss_mask[s+1:e]``.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from nemo_runspec import atomic
from nemo_runspec.errors import DataError
from nemo_runspec.progress import RateProgress
from nemotron.data.bad_records import SkipCounter
from nemotron.data.chat import ChatTemplate, ConversationError, to_messages, tokenize_conversation
from nemotron.data.packed_parquet import shard_name, write_shard
from nemotron.data.packing import pack
from nemotron.data.splits import SPLITS, refuse_empty_splits, split_by_hash
from nemotron.data.text_sources import DatasetSpec, SourceFile, WorkUnit, describe_files, iter_records, plan_units
from nemotron.data.tokenizer import load_tokenizer

SPOOL_DONE = "spool/done.json"
# Always skipped and counted, whatever on_error says: masking such a conversation by text
# positions would be wrong, and no fix of the record makes it right.
_ALWAYS_SKIPPED = ("template_inconsistent",)


@dataclass(frozen=True)
class SFTSettings:
    """How to run a prep; the values come validated from ``data_prep`` (nemotron.schemas.data_prep)."""

    output_dir: str
    tokenizer_path: str
    template: ChatTemplate
    pack_size: int
    algorithm: str
    seed: int
    split_ratios: tuple[float, float, float]
    on_error: str
    overlong: str  # truncate or drop
    packs_per_shard: int
    workers: int  # processes that render and tokenize; 0: this one


@dataclass
class SplitResult:
    path: str
    num_packs: int
    num_sequences: int
    num_tokens: int
    max_sequences_per_pack: int
    max_sequence_length: int


@dataclass
class SFTOutcome:
    splits: dict[str, SplitResult] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    truncated: int = 0
    dropped: int = 0
    conversations: int = 0
    elapsed_s: float = 0.0

    @property
    def num_packs(self) -> int:
        return sum(s.num_packs for s in self.splits.values())

    @property
    def num_sequences(self) -> int:
        return sum(s.num_sequences for s in self.splits.values())

    def packing_efficiency(self, pack_size: int) -> float:
        tokens = sum(s.num_tokens for s in self.splits.values())
        return 100.0 * tokens / max(self.num_packs * pack_size, 1)


def prepare_sft(datasets: list[DatasetSpec], files: list[SourceFile], settings: SFTSettings,
                show_progress: bool = True) -> SFTOutcome:
    output_dir = Path(settings.output_dir)
    outcome = SFTOutcome()
    done = output_dir / SPOOL_DONE
    if done.is_file():
        spooled = json.loads(done.read_text())
    else:
        spooled = _spool(datasets, files, settings, show_progress)
        # The time stays out of the marker: the output's files are the same in every run.
        atomic.write_text(done, json.dumps({k: v for k, v in spooled.items() if k != "elapsed_s"}, indent=1))
    for units in (output_dir / "spool").glob("units-*"):  # the spool is whole: its parts can go
        shutil.rmtree(units)
    outcome.skipped, outcome.truncated, outcome.dropped = spooled["skipped"], spooled["truncated"], spooled["dropped"]
    outcome.conversations, outcome.elapsed_s = spooled["conversations"], spooled.get("elapsed_s", 0.0)
    lengths = {split: np.diff(np.load(output_dir / "spool" / f"{split}.offsets.npy")) for split in SPLITS}
    _refuse_empty(datasets, files, settings, outcome, {split: len(v) for split, v in lengths.items()})
    for split, split_lengths in lengths.items():
        if len(split_lengths):
            outcome.splits[split] = _materialise(output_dir, split, split_lengths, settings)
    return outcome


def _refuse_empty(datasets: list[DatasetSpec], files: list[SourceFile], settings: SFTSettings, outcome: SFTOutcome,
                  counts: dict[str, int]) -> None:
    """Nothing is packed without conversations in train and in every split data_prep.splits
    gives a share; those shares apply to the datasets without a split."""
    inputs = describe_files(files)
    if not outcome.conversations:
        raise DataError(f"no conversations left in {inputs} (skipped: {outcome.skipped or 'none'}; dropped as longer "
                        f"than data_prep.pack_size={settings.pack_size}: {outcome.dropped})",
                        hint="check data_prep.blend, or raise data_prep.pack_size")
    hashed = any(spec.split is None for spec in datasets)
    asked = {split: f"{ratio:g}" for split, ratio in zip(SPLITS, settings.split_ratios) if ratio > 0 and hashed}
    refuse_empty_splits(counts, asked, f"{outcome.conversations} conversations of {inputs}")


# -- pass 1: spool ----------------------------------------------------------------------------

# Work units per worker: enough that a slow unit does not leave the others idle at the end.
_UNITS_PER_WORKER = 4


class _Spool:
    def __init__(self, directory: Path, split: str):
        self.directory, self.split = directory, split
        self.tokens = atomic.AtomicFile(directory / f"{split}.tokens")
        self.masks = atomic.AtomicFile(directory / f"{split}.mask")
        self.offsets = [0]

    def add(self, ids: np.ndarray, mask: np.ndarray) -> None:
        self.tokens.write(ids.astype(np.int32).tobytes())
        self.masks.write(mask.astype(np.uint8).tobytes())
        self.offsets.append(self.offsets[-1] + len(ids))

    def append(self, other: Path) -> None:
        """Add the closed spool of one work unit, which ``other`` names without suffix."""
        for suffix, stream in ((".tokens", self.tokens), (".mask", self.masks)):
            with open(other.with_name(other.name + suffix), "rb") as source:
                shutil.copyfileobj(source, stream.stream)
        lengths = np.diff(np.load(other.with_name(other.name + ".offsets.npy")))
        self.offsets.extend((self.offsets[-1] + np.cumsum(lengths)).tolist())

    def close(self) -> None:
        self.tokens.commit()
        self.masks.commit()
        np.save(self.directory / f"{self.split}.offsets.npy", np.asarray(self.offsets, dtype=np.int64))

    def discard(self) -> None:
        self.tokens.discard()
        self.masks.discard()


@contextmanager
def _open_spools(directory: Path, prefix: str = "") -> Iterator[dict[str, _Spool]]:
    """One spool per split, named ``<prefix><split>``; a failure (a bad record, an interrupt)
    leaves none of their temporary files behind."""
    spools = {split: _Spool(directory, f"{prefix}{split}") for split in SPLITS}
    try:
        yield spools
    except BaseException:
        for spool in spools.values():
            spool.discard()
        raise


@dataclass
class _UnitCounts:
    skipped: dict[str, int]
    truncated: int
    dropped: int
    conversations: int
    tokens: int


def _spool(datasets: list[DatasetSpec], files: list[SourceFile], settings: SFTSettings, show_progress: bool) -> dict:
    directory = Path(settings.output_dir) / "spool"
    per_dataset = max(1, settings.workers * _UNITS_PER_WORKER)
    # Units finished by an interrupted run with the same plan are kept (their marker says so);
    # another plan cuts other byte ranges, so its units are of no use.
    units_dir = directory / f"units-{per_dataset}"
    for stale in directory.glob("units-*"):
        if stale != units_dir:
            shutil.rmtree(stale)
    units_dir.mkdir(parents=True, exist_ok=True)
    units = [unit for spec in datasets for unit in plan_units(spec, [f for f in files if f.dataset == spec.name], per_dataset)]
    jobs = [(unit, str(units_dir / f"{index:05d}")) for index, unit in enumerate(units)]
    skipped, truncated, dropped, conversations = SkipCounter(), 0, 0, 0
    with _open_spools(directory) as spools, RateProgress("tokenizing conversations", total=len(units),
                                                         counters=("conversations", "tokens"), enabled=show_progress) as bar:
        for (_, prefix), counts in zip(jobs, _run_units(jobs, settings, bar)):
            for split, spool in spools.items():
                spool.append(Path(f"{prefix}.{split}"))
            skipped.update(counts.skipped)
            truncated, dropped = truncated + counts.truncated, dropped + counts.dropped
            conversations += counts.conversations
            bar.unit_done()
        for spool in spools.values():
            spool.close()
    return {"skipped": dict(sorted(skipped.items())), "truncated": truncated, "dropped": dropped,
            "conversations": conversations, "elapsed_s": round(bar.elapsed, 3)}


def _run_units(jobs: list[tuple[WorkUnit, str]], settings: SFTSettings, bar: RateProgress) -> Iterator[_UnitCounts]:
    """Each unit's counts, in unit order: a finished unit's from its marker, the others' as they
    are spooled (here, or in ``workers`` processes)."""
    finished = {prefix: _finished(prefix) for _, prefix in jobs}
    spooled = _spool_units([(unit, prefix) for unit, prefix in jobs if finished[prefix] is None], settings, bar)
    for _, prefix in jobs:
        counts = finished[prefix]
        if counts is None:
            counts = next(spooled)
        else:
            bar.add(conversations=counts.conversations, tokens=counts.tokens)
        yield counts


def _spool_units(jobs: list[tuple[WorkUnit, str]], settings: SFTSettings, bar: RateProgress) -> Iterator[_UnitCounts]:
    """Spool the units, yielding their counts in order; the bar counts each conversation here,
    each finished unit's conversations with workers."""
    if settings.workers == 0 or not jobs:
        report = lambda tokens: bar.add(conversations=1, tokens=tokens)  # noqa: E731
        yield from (_spool_unit(unit, prefix, settings, report) for unit, prefix in jobs)
        return
    import multiprocessing

    # spawn, as the stage-0 prep: the parent may hold threads (progress bar) that fork would copy.
    with ProcessPoolExecutor(settings.workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker) as pool:
        futures = [pool.submit(_spool_unit, unit, prefix, settings) for unit, prefix in jobs]
        try:
            for future in futures:
                counts = future.result()  # re-raises a worker's error (a DataError keeps its hint)
                bar.add(conversations=counts.conversations, tokens=counts.tokens)
                yield counts
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


@functools.lru_cache(maxsize=1)
def _tokenizer(path: str):
    """Loaded once per process, not once per unit (a large vocabulary takes a while to parse)."""
    return load_tokenizer(path).tokenizer


def _init_worker() -> None:
    # One conversation at a time: the Rust tokenizer's own threads would only compete.
    os.environ["RAYON_NUM_THREADS"] = "1"


def _spool_unit(unit: WorkUnit, prefix: str, settings: SFTSettings, report=None) -> _UnitCounts:
    """Render, tokenize and mask one unit's conversations into its own spool files; ``report``
    gets each spooled conversation's token count."""
    tokenizer = _tokenizer(settings.tokenizer_path)
    target = Path(prefix)
    skipped, truncated, dropped, conversations, tokens = SkipCounter(), 0, 0, 0, 0
    with _open_spools(target.parent, f"{target.name}.") as spools:
        for segment in unit.segments:
            for record, where in iter_records(segment, settings.on_error, skipped):
                try:
                    messages, tools = to_messages(record)
                    sequence = tokenize_conversation(messages, tools, settings.template, tokenizer)
                except ConversationError as err:
                    if settings.on_error != "skip" and err.reason not in _ALWAYS_SKIPPED:
                        raise DataError(f"{where()}: {err}", hint="fix the record, or set data_prep.on_error=skip "
                                                                  "to count and skip bad conversations") from None
                    skipped[err.reason] += 1
                    continue
                ids, mask = sequence.input_ids, sequence.loss_mask
                if len(ids) > settings.pack_size:
                    if settings.overlong == "drop":
                        dropped += 1
                        continue
                    ids, mask = ids[: settings.pack_size], mask[: settings.pack_size]
                    if not mask.any():  # the cut took every assistant token
                        skipped["no_target_after_truncation"] += 1
                        continue
                    truncated += 1
                spools[unit.dataset.split or _split_of(messages, tools, settings.split_ratios)].add(ids, mask)
                conversations += 1
                tokens += len(ids)
                if report is not None:
                    report(len(ids))
        for spool in spools.values():
            spool.close()
    counts = _UnitCounts(dict(skipped), truncated, dropped, conversations, tokens)
    atomic.write_text(Path(f"{prefix}.done.json"), json.dumps(asdict(counts)))  # last: the unit is complete
    return counts


def _finished(prefix: str) -> _UnitCounts | None:
    """The counts of a unit an earlier run completed, None when it must be spooled."""
    marker = Path(f"{prefix}.done.json")
    return _UnitCounts(**json.loads(marker.read_text())) if marker.is_file() else None


def _split_of(messages: list[dict], tools, ratios: tuple[float, float, float]) -> str:
    """A split from a hash of the conversation: stable, and duplicates share a split."""
    canonical = json.dumps({"messages": messages, "tools": tools}, sort_keys=True, ensure_ascii=False)
    return SPLITS[split_by_hash(canonical.encode(), ratios)]


# -- passes 2 and 3: pack and materialise ------------------------------------------------------

def _materialise(output_dir: Path, split: str, lengths: np.ndarray, settings: SFTSettings) -> SplitResult:
    spool = output_dir / "spool"
    offsets = np.load(spool / f"{split}.offsets.npy")
    tokens = np.memmap(spool / f"{split}.tokens", dtype=np.int32, mode="r")
    masks = np.memmap(spool / f"{split}.mask", dtype=np.uint8, mode="r")
    packs = pack(lengths, settings.pack_size, settings.algorithm, settings.seed)
    target = output_dir / split
    target.mkdir(parents=True, exist_ok=True)
    for shard, first in enumerate(range(0, len(packs), settings.packs_per_shard)):
        path = target / shard_name(shard)
        if path.is_file():
            continue  # written by an earlier, interrupted run: shards are deterministic
        rows = packs[first: first + settings.packs_per_shard]
        sequences = [i for row in rows for i in row]
        ids = np.concatenate([tokens[offsets[i]:offsets[i + 1]] for i in sequences])
        mask = np.concatenate([masks[offsets[i]:offsets[i + 1]] for i in sequences])
        row_lengths = np.array([sum(int(lengths[i]) for i in row) for row in rows], dtype=np.int32)
        starts = np.concatenate([np.concatenate([[0], np.cumsum([lengths[i] for i in row])[:-1]]) for row in rows])
        write_shard(path, ids, mask, row_lengths, starts, np.array([len(row) for row in rows]), settings.pack_size)
    return SplitResult(
        path=str(target), num_packs=len(packs), num_sequences=len(lengths), num_tokens=int(lengths.sum()),
        max_sequences_per_pack=max(len(p) for p in packs), max_sequence_length=int(lengths.max()),
    )


