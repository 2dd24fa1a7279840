"""``data import rl PATH``: split JSONL prompts (+ manifest.json) -> SplitJsonlDataArtifact.

PATH holds ``train.jsonl`` (and optionally ``val.jsonl``, ``test.jsonl``), or a
``manifest.json`` naming them with their counts and sha256 (checked). Every line must be a
JSON object holding a prompt as `data prep rl` reads one (:func:`nemotron.data.rl_records.to_prompt`);
prompts without an answer are counted, since verifier rewards need one. The artifact's
directory links the split files and the manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nemo_runspec.errors import ConfigError, DataError
from nemotron.data.files import file_sha256
from nemotron.data.splits import RL_SPLITS
from nemotron.stages.imports.options import load_tokenizer
from nemotron.stages.imports.output import MARKER, data_root, link_directory, source_info, tracking_for
from nemotron.stages.imports.paths import check_tree, found, non_empty_dir, read_json, resolve
from nemotron.stages.step import Output, Produced, run_step



def import_rl(path, name: str, tokenizer: str | None, root):
    from nemotron.data.rl_prep import MANIFEST
    from nemotron.data.rl_records import FIELDS, SCHEMA, SCHEMA_VERSION
    from nemotron.kit.artifacts import SplitJsonlDataArtifact

    tracking = tracking_for(root, name, "SplitJsonlDataArtifact")
    expected = "train.jsonl (and optionally val.jsonl, test.jsonl) or a manifest.json naming them"
    given, resolved = resolve(path)
    non_empty_dir(resolved, given, expected)
    listing = check_tree(resolved)
    manifest = read_json(resolved / MANIFEST, "the manifest of `data prep rl`") if (resolved / MANIFEST).is_file() else None
    files = _rl_files(resolved, manifest, expected)
    counts, ours, without_answer = {}, True, 0
    for split, file in files.items():
        counts[split], our_fields, missing_answers = _read_prompts(file, FIELDS)
        ours &= our_fields
        without_answer += missing_answers
        listed = ((manifest or {}).get("files") or {}).get(split) or {}
        if isinstance(listed.get("count"), int) and listed["count"] != counts[split]:
            raise DataError(f"{file}: {counts[split]} lines, but {resolved / MANIFEST} says {listed['count']}")
        if isinstance(listed.get("sha256"), str) and listed["sha256"] != file_sha256(file):
            raise DataError(f"{file}: its sha256 differs from the one {resolved / MANIFEST} records")
    if counts["train"] == 0:
        raise DataError(f"{files['train']}: no prompts")
    if without_answer:
        print(f"warning: {without_answer} prompts have no answer (expected_answer/answer/solution); "
              "verifier rewards need one")
    if manifest and manifest.get("schema"):
        record_schema = f"{manifest['schema']}/v{manifest.get('schema_version')}"
    else:
        record_schema = f"{SCHEMA}/v{SCHEMA_VERSION}" if ours else None

    links = {f"{split}.jsonl": file for split, file in files.items()}
    if manifest is not None:
        links[MANIFEST] = resolved / MANIFEST
    loaded = load_tokenizer(tokenizer) if tokenizer is not None else None

    def produce(out: Output) -> Produced:
        link_directory(out.directory, links)
        in_dir = lambda split: out.directory / f"{split}.jsonl" if split in files else None  # noqa: E731
        artifact = SplitJsonlDataArtifact(
            path=out.directory,
            train_path=in_dir("train"),
            val_path=in_dir("val"),
            test_path=in_dir("test"),
            train_count=counts["train"],
            val_count=counts.get("val", 0),
            test_count=counts.get("test", 0),
            sources=[source_info(given, resolved)],
            manifest_path=out.directory / MANIFEST if manifest is not None else None,
            record_schema=record_schema,
            metadata={
                "imported_from": str(given),
                "without_answer": without_answer,
                **({"tokenizer_sha256": loaded.info.sha256, "tokenizer_path": loaded.info.path,
                    "vocab_size": loaded.vocab_size} if loaded else {}),
            },
        )
        return Produced(artifact, f"{artifact.train_count} train / {artifact.val_count} val / "
                                  f"{artifact.test_count} test prompts, imported from {given}")

    identity = {"kind": "rl-data", "source": str(resolved), "files": listing,
                "tokenizer": loaded.info.sha256 if loaded else None}
    return run_step(tracking, SplitJsonlDataArtifact, name, root=data_root(), identity=identity, marker=MARKER,
                    produce=produce, what="import")


def _rl_files(directory: Path, manifest: Any, expected: str) -> dict[str, Path]:
    """split -> its JSONL file: as the manifest names them, else ``<split>.jsonl``."""
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    if manifest is not None and not isinstance(listed, dict):
        raise DataError(f"{directory / 'manifest.json'}: no 'files' mapping (split -> {{path, count}})")
    files = {}
    for split in RL_SPLITS:
        entry = (listed or {}).get(split)
        name = entry.get("path") if isinstance(entry, dict) else None
        file = directory / (name or f"{split}.jsonl")
        if name and not file.is_file():
            raise DataError(f"{directory / 'manifest.json'} names {name} for {split}, which is missing")
        if file.is_file():
            if not file.resolve().is_relative_to(directory):
                raise ConfigError(f"{file} is outside the imported directory {directory}")
            files[split] = file.resolve()
    if "train" not in files:
        raise ConfigError(f"{directory}: expected {expected}; found: {found(directory)}")
    return files


def _read_prompts(file: Path, fields: tuple[str, ...]) -> tuple[int, bool, int]:
    """(line count, whether every line has exactly ``fields``, prompts without an answer);
    every line must be a JSON object holding a prompt (``nemotron.data.rl_records.to_prompt``)."""
    import orjson

    from nemotron.data.rl_records import PromptError, to_prompt

    count, ours, without_answer = 0, True, 0
    with open(file, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                raise DataError(f"{file}:{number}: empty line")
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as err:
                raise DataError(f"{file}:{number}: not JSON ({err})") from None
            try:
                to_prompt(record)
            except PromptError as err:
                if err.reason != "no_answer":
                    raise DataError(f"{file}:{number}: {err}") from None
                without_answer += 1
            ours = ours and tuple(record) == fields
            count += 1
    return count, ours, without_answer
