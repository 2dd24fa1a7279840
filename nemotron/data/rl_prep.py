"""Stage-2 data prep: prompts with verifiable answers -> train/val/test JSONL for RL.

Input shapes
------------
One JSON object a line (JSONL, JSONL.gz) or one Parquet row per record, in any of three
shapes, told apart by their keys in this order:

1. NeMo-Gym: ``{"responses_create_params": {"input": [messages...] | "text"}, <answer>}``.
   Messages may carry ``"type": "message"``; content is a string or a list of text parts
   (``{"type": "input_text" | "text" | "output_text", "text": ...}``). Other keys of
   ``responses_create_params`` (tools, sampling settings) are not carried over.
2. Messages: ``{"messages": [...], <answer>}``. A final assistant message, if any, is not part
   of the prompt (it is usually a reference solution).
3. Plain: ``{<problem>, <answer>}``.

``<problem>`` is the first of ``PROBLEM_KEYS`` = ``problem``, ``question``, ``prompt`` that the
record holds with a non-null value; ``<answer>`` likewise from ``ANSWER_KEYS`` =
``expected_answer``, ``answer``, ``solution`` (in that order of precedence, in every shape).
The answer is a string or a number (written with ``str()``), stripped of surrounding
whitespace and never empty. Message roles are ``system``, ``developer``, ``user`` and
``assistant``; the prompt must end with a user message, whose text is the problem. An optional
``id`` (string or integer) names the record.

Output schema (``SCHEMA`` v1)
-----------------------------
``train.jsonl``, ``val.jsonl`` and ``test.jsonl`` (always all three, possibly empty), one
object a line, every field always present, keys in this order::

    {"id": "<dataset>/<record id, or the record's 0-based position in its dataset>",
     "source": "<dataset name>",
     "messages": [{"role": "system"|"developer"|"user"|"assistant", "content": str}, ...],
     "problem": "<text of the last user message>",
     "expected_answer": "<answer as a string>",
     "responses_create_params": {"input": <messages, the same list>},
     "extra_env_info": {"ground_truth": "<expected_answer>"}}

Why this shape: it is one file that both consumers read without conversion.

- NeMo-Gym reads a row's ``responses_create_params`` as the request to the policy and hands the
  whole row to the resource server's verifier, which reads ``expected_answer`` (NeMo-RL's
  ``NemoGymDataset`` passes each line through unchanged).
- NeMo-RL's math path: ``ResponseDataset`` keeps rows that already have ``messages`` as they
  are, and ``math_data_processor`` builds the prompt from ``problem`` and the environment's
  ``extra_env_info.ground_truth`` from ``expected_answer``; ``extra_env_info`` is written too,
  in the form the math environment receives, for readers that take it directly. ``messages``
  holds the prompt only (no answer turn), so use ``math_data_processor``, not the HF-style
  processor that reads the answer from ``messages[1]``.

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
import math
import os
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from nemo_runspec import atomic
from nemo_runspec.errors import ConfigError, DataError
from nemo_runspec.progress import RateProgress
from nemotron.data.bad_records import RecordError, SkipCounter, reject
from nemotron.data.files import file_sha256
from nemotron.data.splits import RL_NAMES, RL_SPLITS
from nemotron.data.text_sources import DatasetSpec, SourceFile, iter_records, plan_units

SCHEMA = "nemotron.rl_prompts"
SCHEMA_VERSION = 1
FIELDS = ("id", "source", "messages", "problem", "expected_answer", "responses_create_params", "extra_env_info")
PROBLEM_KEYS = ("problem", "question", "prompt")
ANSWER_KEYS = ("expected_answer", "answer", "solution")
ROLES = ("system", "developer", "user", "assistant")
MANIFEST = "manifest.json"
_TEXT_PARTS = ("input_text", "text", "output_text")


# -- settings ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SplitSpec:
    """How many of the drawn prompts val and test take: each a ``("count", n)`` or a
    ``("fraction", f)``; train takes the rest."""

    val: tuple[str, float | int]
    test: tuple[str, float | int]
    requested: dict[str, Any]

    def sizes(self, prompts: int) -> dict[str, int]:
        """How many of ``prompts`` distinct prompts each split draws."""
        val, test = self._size(self.val, prompts), self._size(self.test, prompts)
        if val + test > prompts:
            if "count" not in (self.val[0], self.test[0]):
                test = prompts - val  # two fractions rounded up past the total (a handful of prompts)
            else:
                raise ConfigError(
                    f"data_prep.splits {self.requested} asks for {val} val + {test} test prompts, but the data "
                    f"holds only {prompts} distinct prompts to draw from", hint="lower the counts, or give fractions (0.05)")
        return {"train": prompts - val - test, "val": val, "test": test}

    @staticmethod
    def _size(part: tuple[str, float | int], prompts: int) -> int:
        kind, value = part
        return int(value) if kind == "count" else min(prompts, math.floor(prompts * value + 0.5))

    def describe(self) -> dict[str, Any]:
        return {"requested": self.requested, "train": "rest",
                "val": {self.val[0]: self.val[1]}, "test": {self.test[0]: self.test[1]}}


def split_spec(splits: Any) -> SplitSpec:
    """Parse ``data_prep.splits``; errors are ConfigErrors.

    ``val`` / ``test``: an integer is a count of distinct prompts, a float a fraction of them;
    a missing one is 0. ``train`` (missing or null) takes the rest; when given (a float), the
    three floats are weights normalised by their sum, so ``{train: 0.9, val: 0.05, test: 0.05}``
    works too.
    """
    if not isinstance(splits, dict) or not splits:
        raise ConfigError(f"data_prep.splits must be a mapping such as {{val: 0.05, test: 0.05}}, got {splits!r}")
    unknown = sorted(set(splits) - set(RL_SPLITS))
    if unknown:
        raise ConfigError(f"data_prep.splits: unknown split(s) {unknown} (use train, val, test)")
    for name, value in splits.items():
        if name == "train" and value is None:
            continue  # the rest
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or math.isinf(value):
            raise ConfigError(f"data_prep.splits.{name} must be a non-negative number, got {value!r}")
    requested = {name: splits[name] for name in RL_SPLITS if name in splits}
    splits = {name: value for name, value in splits.items() if not (name == "train" and value is None)}
    if "train" in splits:
        if any(isinstance(v, int) for v in splits.values()):
            raise ConfigError(f"data_prep.splits {requested}: with train given, every split must be a ratio "
                              f"(a float such as 0.9)", hint="train takes the rest: give counts for val and test "
                                                             "only ({val: 20, test: 20})")
        total = sum(float(v) for v in splits.values())
        if total <= 0:
            raise ConfigError(f"data_prep.splits must not be all zero, got {requested}")
        return SplitSpec(("fraction", splits.get("val", 0.0) / total), ("fraction", splits.get("test", 0.0) / total),
                         requested)
    parts = {}
    for name in ("val", "test"):
        value = splits.get(name, 0)
        if isinstance(value, int):
            parts[name] = ("count", value)
        elif value > 1:
            raise ConfigError(f"data_prep.splits.{name}={value} is a fraction above 1",
                              hint="give a count as an integer (20) or a fraction as a float (0.05)")
        else:
            parts[name] = ("fraction", float(value))
    fractions = sum(v for kind, v in parts.values() if kind == "fraction")
    if fractions > 1 + 1e-9:
        raise ConfigError(f"data_prep.splits {requested}: val + test fractions exceed 1")
    return SplitSpec(parts["val"], parts["test"], requested)


@dataclass(frozen=True)
class RLSettings:
    """How to run a prep; the values come validated from ``data_prep`` (nemotron.schemas.data_prep)."""

    output_dir: str
    splits: SplitSpec
    seed: int
    on_error: str


# -- one record -> one prompt ------------------------------------------------------------------

class PromptError(RecordError):
    """A record that holds no usable prompt and answer (``reason``: the counter it is skipped under)."""


@dataclass(frozen=True)
class Prompt:
    messages: list[dict[str, str]]
    problem: str
    answer: str
    record_id: str | None


def to_prompt(record: Any) -> Prompt:
    """The prompt messages, problem text, answer and id of one input record, in any shape."""
    if not isinstance(record, dict):
        raise PromptError("bad_record", f"record is a JSON {type(record).__name__}, not an object")
    if record.get("responses_create_params") is not None:
        params = record["responses_create_params"]
        if not isinstance(params, dict) or params.get("input") is None:
            raise PromptError("bad_prompt", "'responses_create_params' must be an object with an 'input'")
        raw = params["input"]
        messages = [{"role": "user", "content": raw}] if isinstance(raw, str) else _messages(raw, "responses_create_params.input")
    elif record.get("messages") is not None:
        messages = _messages(record["messages"], "messages")
        if len(messages) > 1 and messages[-1]["role"] == "assistant":
            messages = messages[:-1]
    else:
        key = _first_key(record, PROBLEM_KEYS)
        if key is None:
            raise PromptError("no_prompt", f"no prompt: none of 'responses_create_params', 'messages', "
                                           f"{', '.join(map(repr, PROBLEM_KEYS))} (keys: {', '.join(list(record)[:8])})")
        if not isinstance(record[key], str):
            raise PromptError("bad_prompt", f"{key!r} is a {_kind(record[key])}, not a string")
        messages = [{"role": "user", "content": record[key]}]
    if not messages or messages[-1]["role"] != "user":
        raise PromptError("bad_prompt", "the prompt must end with a user message")
    problem = messages[-1]["content"]
    if not problem.strip():
        raise PromptError("no_prompt", "the problem (last user message) is empty")
    return Prompt(messages, problem, _answer(record), _record_id(record))


def prompt_identity(problem: str) -> str:
    """What makes two prompts the same: the problem whitespace-collapsed and case-folded."""
    return " ".join(problem.split()).casefold()


def _first_key(record: dict, keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if record.get(k) is not None), None)


def _kind(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "JSON " + names.get(type(value), type(value).__name__)


def _messages(raw: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise PromptError("bad_prompt", f"{where!r} must be a non-empty list of messages")
    messages = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict):
            raise PromptError("bad_prompt", f"{where}[{i}] is a {_kind(message)}, not a message object")
        if message.get("type", "message") != "message":
            raise PromptError("bad_prompt", f"{where}[{i}] is a {message.get('type')!r} item, not a message")
        role = message.get("role")
        if role not in ROLES:
            raise PromptError("bad_prompt", f"{where}[{i}] has role {role!r} (roles: {', '.join(ROLES)})")
        messages.append({"role": role, "content": _content(message.get("content"), f"{where}[{i}]")})
    return messages


def _content(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") in _TEXT_PARTS and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                raise PromptError("bad_prompt", f"{where}.content has a part that is not text: {str(part)[:60]}")
        return "".join(texts)
    raise PromptError("bad_prompt", f"{where}.content is a {_kind(content)}, not a string or list of text parts")


def _answer(record: dict) -> str:
    key = _first_key(record, ANSWER_KEYS)
    if key is None:
        raise PromptError("no_answer", f"no answer: none of {', '.join(map(repr, ANSWER_KEYS))}")
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise PromptError("bad_answer", f"{key!r} is a {_kind(value)}, not a string or number")
    if isinstance(value, float) and not math.isfinite(value):
        raise PromptError("bad_answer", f"{key!r} is {value}, not a finite number")
    text = str(value).strip()
    if not text:
        raise PromptError("no_answer", f"{key!r} is empty")
    return text


def _record_id(record: dict) -> str | None:
    value = record.get("id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise PromptError("bad_id", f"'id' is a {_kind(value)}, not a string or integer")
    return str(value)


def output_row(prompt: Prompt, row_id: str, source: str) -> dict[str, Any]:
    """One output line (the schema in the module docstring)."""
    return {
        "id": row_id,
        "source": source,
        "messages": prompt.messages,
        "problem": prompt.problem,
        "expected_answer": prompt.answer,
        "responses_create_params": {"input": prompt.messages},
        "extra_env_info": {"ground_truth": prompt.answer},
    }


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


