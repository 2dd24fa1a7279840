"""Stage-2 data prep: prompts with verifiable answers -> train/val/test JSONL for RL.

Records (their shapes and the output schema) are :mod:`nemotron.data.rl_records`; the split
spec is :mod:`nemotron.data.splits`.

``manifest.json`` (written last: its presence marks a complete output) holds the schema name
and version, the field list, each file's record count, distinct-prompt count, size and sha256,
the seed and split spec, every source file (dataset, uri, path, size, sha256, records read and
kept) and the counts below. It has no timestamps: the same inputs give the same bytes.

Splits and duplicates
---------------------
A prompt's identity is its problem text whitespace-collapsed and case-folded. A record whose
prompt messages and answer equal an earlier record's exactly is dropped (``duplicates``). A
record with the same identity but some other difference is kept and goes to the same split
as every other record of that identity (``same_prompt``), so no prompt lands in two splits.
Records keep their input order within a split.

A prompt that occurs in a dataset with a ``split`` (``train``, ``valid`` -> val, ``test``) goes
there (the first such dataset in blend order wins). The other prompts are ordered by a seeded
hash of their identity, so a prompt's place does not depend on the input order, and taken
val first, then test, the rest train. In ``splits``, ``val`` and ``test`` are each a count of
distinct prompts (an integer: ``{val: 20, test: 20}``) or a fraction of them (a float:
``{val: 0.05, test: 0.05}``), and train (missing or null) takes the rest. Ratios with train,
``{train: 0.9, val: 0.05, test: 0.05}``, are normalised by their sum.

Bad records (not JSON, not an object, no prompt, no answer, a value of the wrong type, an id
used twice) raise ``DataError`` naming ``file:line`` (``file:row N`` for Parquet), or with
``on_error="skip"`` are counted by reason in ``skipped``. Every file is written to a temporary
name and renamed into place; the records are spooled to disk, so memory holds only a few
digests per record.
"""


from __future__ import annotations

import hashlib
import os
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from nemo_runspec import atomic
from nemo_runspec.errors import ConfigError, DataError
from nemo_runspec.progress import RateProgress
from nemotron.data.bad_records import SkipCounter, reject
from nemotron.data.files import file_sha256
from nemotron.data.rl_records import FIELDS, SCHEMA, SCHEMA_VERSION, PromptError, output_row, prompt_identity, to_prompt
from nemotron.data.splits import RL_NAMES, RL_SPLITS, SplitSpec, refuse_empty_splits
from nemotron.data.text_sources import DatasetSpec, SourceFile, describe_files, iter_records, plan_units

MANIFEST = "manifest.json"


# -- settings ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RLSettings:
    """How to run a prep; the values come validated from ``data_prep`` (nemotron.schemas.data_prep)."""

    output_dir: str
    splits: SplitSpec
    seed: int
    on_error: str


# -- the whole data set ------------------------------------------------------------------------

@dataclass
class SplitFile:
    path: str
    count: int
    prompts: int
    num_bytes: int
    sha256: str


@dataclass
class SourceStats:
    dataset: str
    file: SourceFile
    split: str | None
    records: int = 0
    kept: int = 0


@dataclass
class RLOutcome:
    splits: dict[str, SplitFile] = field(default_factory=dict)
    sources: list[SourceStats] = field(default_factory=list)
    records_read: int = 0
    kept: int = 0
    duplicates: int = 0
    same_prompt: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    manifest_path: str = ""
    manifest: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0


def prepare_rl(datasets: list[DatasetSpec], files: list[SourceFile], settings: RLSettings,
               show_progress: bool = True) -> RLOutcome:
    """Read every record, drop duplicates, assign splits and write the output directory."""
    if not datasets:
        raise ConfigError("data_prep.blend is empty", hint="list at least one dataset (name, path)")
    if len({d.name for d in datasets}) != len(datasets):
        raise ConfigError("data_prep.blend has two datasets with the same name")
    output_dir = Path(settings.output_dir)
    created = not output_dir.exists()
    output_dir.mkdir(parents=True, exist_ok=True)
    spool_path = output_dir / f".spool.{os.getpid()}.jsonl.tmp"
    try:
        outcome, record_groups, group_splits = _read(datasets, files, settings, spool_path, show_progress)
        _refuse_empty(datasets, files, settings, group_splits)
        _write_splits(output_dir, spool_path, record_groups, group_splits, outcome)
    except BaseException:
        spool_path.unlink(missing_ok=True)
        if created and not any(output_dir.iterdir()):
            output_dir.rmdir()  # a failed first run leaves nothing behind
        raise
    spool_path.unlink(missing_ok=True)
    outcome.manifest = _manifest(outcome, settings)
    outcome.manifest_path = str(output_dir / MANIFEST)
    atomic.write_bytes(output_dir / MANIFEST, orjson.dumps(outcome.manifest, option=orjson.OPT_INDENT_2) + b"\n")
    return outcome


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _read(datasets, files, settings: RLSettings, spool_path: Path, show_progress: bool):
    """Pass 1: every kept record to the spool (input order); each prompt's split decided."""
    outcome, skipped = RLOutcome(), SkipCounter()
    record_groups = array("q")            # kept record -> prompt group
    group_rank: list[bytes] = []           # group -> seeded hash of its identity
    group_pin: list[str | None] = []       # group -> split of the first pinned dataset holding it
    groups: dict[bytes, int] = {}
    seen_records: set[bytes] = set()
    seen_ids: set[str] = set()
    seed = str(settings.seed).encode() + b"\0"
    with open(spool_path, "wb") as spool, \
            RateProgress("reading prompts", total=len(files), counters=("records",), enabled=show_progress) as bar:
        for spec in datasets:
            pin = RL_NAMES[spec.split] if spec.split else None
            position = 0
            for unit in plan_units(spec, [f for f in files if f.dataset == spec.name], 1):
                for segment in unit.segments:
                    stats = SourceStats(spec.name, segment.file, pin)
                    outcome.sources.append(stats)
                    for record, where in iter_records(segment, settings.on_error, skipped):
                        stats.records += 1
                        position += 1
                        try:
                            prompt = to_prompt(record)
                        except PromptError as err:
                            reject(err.reason, f"{where()}: {err}", settings.on_error, skipped)
                            continue
                        exact = _digest(orjson.dumps([prompt.messages, prompt.answer]))
                        if exact in seen_records:
                            outcome.duplicates += 1
                            continue
                        row_id = f"{spec.name}/{prompt.record_id if prompt.record_id is not None else position - 1}"
                        if row_id in seen_ids:
                            reject("duplicate_id", f"{where()}: id {row_id!r} is used by an earlier record",
                                   settings.on_error, skipped)
                            continue
                        seen_records.add(exact)
                        seen_ids.add(row_id)
                        identity = prompt_identity(prompt.problem).encode()
                        key = _digest(identity)
                        group = groups.get(key)
                        if group is None:
                            group = groups[key] = len(group_rank)
                            group_rank.append(_digest(seed + identity))
                            group_pin.append(pin)
                        else:
                            outcome.same_prompt += 1
                            if group_pin[group] is None:
                                group_pin[group] = pin
                        record_groups.append(group)
                        spool.write(orjson.dumps(output_row(prompt, row_id, spec.name)) + b"\n")
                        stats.kept += 1
                    bar.add(records=stats.records)
                    bar.unit_done()
        outcome.elapsed_s = round(bar.elapsed, 3)
    outcome.records_read = sum(s.records for s in outcome.sources)
    outcome.kept = len(record_groups)
    outcome.skipped = dict(sorted(skipped.items()))
    if not outcome.kept:
        raise DataError(f"no usable prompts in {len(files)} file(s) ({outcome.records_read} records read, "
                        f"skipped: {outcome.skipped or 'none'})", hint="check data_prep.blend and the record shapes")
    return outcome, record_groups, _assign(group_rank, group_pin, settings.splits)


def _assign(group_rank: list[bytes], group_pin: list[str | None], spec: SplitSpec) -> bytearray:
    """Each group's split as an index into RL_SPLITS: pinned ones as pinned, the others drawn
    in seeded-hash order: val first, then test, then train."""
    splits = bytearray(len(group_rank))
    free = sorted((g for g, pin in enumerate(group_pin) if pin is None), key=group_rank.__getitem__)
    sizes = spec.sizes(len(free))
    order = ["val"] * sizes["val"] + ["test"] * sizes["test"] + ["train"] * sizes["train"]
    for group, split in zip(free, order):
        splits[group] = RL_SPLITS.index(split)
    for group, pin in enumerate(group_pin):
        if pin is not None:
            splits[group] = RL_SPLITS.index(pin)
    return splits


def _refuse_empty(datasets: list[DatasetSpec], files: list[SourceFile], settings: RLSettings,
                  group_splits: bytearray) -> None:
    """No output without prompts in train and in every split data_prep.splits asks for (a count or
    a fraction above 0: of the prompts of the datasets without a split)."""
    prompts = {split: group_splits.count(index) for index, split in enumerate(RL_SPLITS)}
    hashed = any(spec.split is None for spec in datasets)
    asked = {split: value for split, value in settings.splits.requested.items() if split != "train" and value and hashed}
    refuse_empty_splits(prompts, asked, f"{len(group_splits)} distinct prompts of {describe_files(files)}")


def _write_splits(output_dir: Path, spool_path: Path, record_groups: array, group_splits: bytearray,
                  outcome: RLOutcome) -> None:
    """Pass 2: the spool, in order, into one file per split, each renamed into place at the end."""
    files = {split: atomic.AtomicFile(output_dir / f"{split}.jsonl") for split in RL_SPLITS}
    digests = {split: hashlib.sha256() for split in RL_SPLITS}
    counts = dict.fromkeys(RL_SPLITS, 0)
    sizes = dict.fromkeys(RL_SPLITS, 0)
    prompts = {split: group_splits.count(RL_SPLITS.index(split)) for split in RL_SPLITS}  # every group has a record
    try:
        with open(spool_path, "rb") as spool:
            for index, line in enumerate(spool):
                group = record_groups[index]
                split = RL_SPLITS[group_splits[group]]
                files[split].write(line)
                digests[split].update(line)
                counts[split] += 1
                sizes[split] += len(line)
    except BaseException:
        for file in files.values():
            file.discard()
        raise
    for split, file in files.items():
        file.commit()
        outcome.splits[split] = SplitFile(str(file.path), counts[split], prompts[split], sizes[split],
                                          digests[split].hexdigest())


def _manifest(outcome: RLOutcome, settings: RLSettings) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "fields": list(FIELDS),
        "files": {split: {"path": Path(f.path).name, "count": f.count, "prompts": f.prompts,
                          "num_bytes": f.num_bytes, "sha256": f.sha256}
                  for split, f in outcome.splits.items()},
        "seed": settings.seed,
        "splits": settings.splits.describe(),
        "sources": [source_entry(s) for s in outcome.sources],
        "records_read": outcome.records_read,
        "kept": outcome.kept,
        "duplicates": outcome.duplicates,
        "same_prompt": outcome.same_prompt,
        "skipped": outcome.skipped,
    }


def source_entry(stats: SourceStats) -> dict[str, Any]:
    return {"dataset": stats.dataset, "uri": stats.file.input_uri, "path": stats.file.path,
            "split": stats.split, "num_bytes": stats.file.size, "sha256": file_sha256(stats.file.path),
            "records": stats.records, "kept": stats.kept}


