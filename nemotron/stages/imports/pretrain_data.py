"""``data import pretrain PATH``: a blend.json of Megatron bin/idx shards -> PretrainBlendsArtifact.

PATH is a blend.json (or its folder): per split, the Megatron blend list ``[weight, prefix,
...]`` or ``[prefix, ...]``, or a plain data_path list (all of it train). Every prefix must be
absolute and have its ``.bin``/``.idx``; the index headers give the token and sequence counts,
and their dtype must hold the tokenizer's ids. The artifact's directory holds the blend
rewritten per split (``${art:data,path}/blend.json``); the shards stay where they are.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nemo_runspec.errors import ConfigError, DataError
from nemotron.data.splits import SPLITS
from nemotron.stages.imports.options import require_tokenizer
from nemotron.stages.imports.output import MARKER, data_root, link_directory, source_info, tracking_for
from nemotron.stages.imports.paths import found, loop_or, non_empty_dir, read_json, resolve
from nemotron.stages.step import Output, Produced, run_step

BLEND_SPLITS = SPLITS


@dataclass
class _Shard:
    prefix: str
    dtype: np.dtype
    tokens: int
    sequences: int


def import_pretrain(path, name: str, tokenizer: str | None, root):
    from nemotron.kit.artifacts import PretrainBlendsArtifact

    tracking = tracking_for(root, name, "PretrainBlendsArtifact")
    given, resolved = resolve(path)
    if resolved.is_dir():
        non_empty_dir(resolved, given, "blend.json")
        if not (resolved / "blend.json").is_file():
            raise ConfigError(f"{given}: expected blend.json; found: {found(resolved)}")
        given, resolved = resolve(given / "blend.json")
    loaded = require_tokenizer(tokenizer, "pretrain")
    blend, blend_format = _read_blend(resolved)
    shards: dict[str, _Shard] = {}
    split_tokens, split_sequences, num_shards = {}, {}, 0
    for split, entries in blend.items():
        for prefix in _prefixes(resolved, split, entries):
            if prefix not in shards:
                shards[prefix] = _read_shard(prefix, resolved, split)
            shard = shards[prefix]
            split_tokens[split] = split_tokens.get(split, 0) + shard.tokens
            split_sequences[split] = split_sequences.get(split, 0) + shard.sequences
            num_shards += 1
    if not num_shards:
        raise DataError(f"{resolved} lists no shards", hint="blend.json: {\"train\": [weight, prefix, ...], ...}")
    for shard in shards.values():
        _check_dtype(shard, loaded)

    text = json.dumps(blend, indent=1) + "\n"

    def produce(out: Output) -> Produced:
        link_directory(out.directory, {}, {"blend.json": text})
        artifact = PretrainBlendsArtifact(
            path=out.directory,
            blend_path=out.directory / "blend.json",
            total_tokens=sum(split_tokens.values()),
            total_sequences=sum(split_sequences.values()),
            num_shards=num_shards,
            split_tokens=split_tokens,
            split_sequences=split_sequences,
            tokenizer=loaded.info,
            sources=[source_info(given, resolved)],
            metadata={
                "imported_from": str(given),
                "blend_format": blend_format,
                "dtypes": sorted({str(s.dtype) for s in shards.values()}),
                "eod_id": loaded.eod_id,
                "pad_id": loaded.pad_id,
            },
        )
        return Produced(artifact, f"{artifact.total_tokens} tokens in {num_shards} shards "
                                  f"({', '.join(f'{s} {t}' for s, t in split_tokens.items())}), imported from {given}")

    identity = {"kind": "pretrain-data", "blend": text, "tokenizer": loaded.info.sha256,
                "shards": sorted((p, os.stat(p + ".bin").st_size, os.stat(p + ".bin").st_mtime_ns) for p in shards)}
    return run_step(tracking, PretrainBlendsArtifact, name, root=data_root(), identity=identity, marker=MARKER,
                    produce=produce, what="import")


def _read_blend(file: Path) -> tuple[dict[str, list], str]:
    """Per split, the Megatron blend list (``[weight, prefix, ...]`` or ``[prefix, ...]``); a
    plain data_path list becomes the train split."""
    raw = read_json(file, 'per-split blend lists ({"train": [...], "valid": [...], "test": [...]}) or a data_path list')
    if isinstance(raw, list):
        return {"train": raw}, "data_path list (all of it train)"
    if not isinstance(raw, dict):
        raise DataError(f"{file}: expected per-split lists or a data_path list, found a JSON {type(raw).__name__}")
    unknown = sorted(set(raw) - set(BLEND_SPLITS))
    if unknown:
        raise DataError(f"{file}: unknown split {unknown[0]!r} (splits: {', '.join(BLEND_SPLITS)})")
    blend = {}
    for split in BLEND_SPLITS:
        entries = raw.get(split)
        if entries is None or entries == []:
            continue
        if not isinstance(entries, list):
            raise DataError(f"{file}: {split!r} must be a list, found a JSON {type(entries).__name__}")
        blend[split] = entries
    return blend, "per-split"


def _prefixes(file: Path, split: str, entries: list) -> list[str]:
    """The shard prefixes of one blend list, read by Megatron-Core's own parser (what training
    reads), after the checks it leaves out: entries are strings or weights, weights are not
    negative, prefixes are absolute."""
    from nemotron.train.megatron_warnings import megatron_quietly

    with megatron_quietly():
        from megatron.core.datasets.utils import get_blend_from_list

    shape = f"{file}: {split!r} must be [weight, prefix, ...] or [prefix, ...]"
    for entry in entries:
        if isinstance(entry, bool) or not isinstance(entry, (str, int, float)):
            raise DataError(f"{shape}, found {entry!r}")
    try:  # it reads weights with float(), so JSON numbers do as well as strings
        prefixes, weights = get_blend_from_list(entries)
    except (AttributeError, AssertionError):  # a number where a prefix goes; weights on only some prefixes
        raise DataError(f"{shape}, found {entries!r}"[:300]) from None
    if weights is not None and not all(w >= 0 for w in weights):  # not `w < 0`: NaN is refused too
        raise DataError(f"{file}: {split!r} has the weight {next(w for w in weights if not w >= 0)}; "
                        "weights are 0 or more")
    for prefix in prefixes:
        if not prefix:
            raise DataError(f"{shape}, found an empty prefix")
        if not os.path.isabs(prefix):
            raise DataError(f"{file}: {split!r} shard prefix {prefix!r} is relative; Megatron would resolve it "
                            "against the training's working directory", hint="write absolute shard prefixes")
    return prefixes


def _read_shard(prefix: str, blend: Path, split: str) -> _Shard:
    """The header of one shard, whose ``.bin`` and ``.idx`` must both resolve."""
    from nemotron.data.indexed_dataset import read_index

    for suffix in (".idx", ".bin"):
        try:
            Path(prefix + suffix).resolve(strict=True)
        except FileNotFoundError:
            raise DataError(f"{prefix}{suffix}: shard file missing (listed in {blend}, split {split})",
                            hint="every prefix of blend.json needs its .bin and .idx") from None
        except (RuntimeError, OSError) as err:
            raise DataError(f"{prefix}{suffix}: cannot be resolved ({loop_or(err)})") from None
    header = read_index(prefix)
    return _Shard(prefix, header.dtype, header.num_tokens, header.num_sequences)


def _check_dtype(shard: _Shard, loaded) -> None:
    """The shard's token dtype holds every id of the tokenizer."""
    if shard.dtype.kind not in "iu":
        raise DataError(f"{shard.prefix}.idx holds {shard.dtype} values, not token ids")
    limit = int(np.iinfo(shard.dtype).max) + 1
    if loaded.vocab_size > limit:
        raise DataError(f"{shard.prefix}.idx stores tokens as {shard.dtype}, which holds ids below {limit}, "
                        f"but tokenizer {loaded.info.path} has {loaded.vocab_size} tokens",
                        hint="pass the tokenizer the shards were made with")
