"""``data import sft PATH``: folders of packed Parquet shards -> SFTDataArtifact.

PATH holds ``train/`` (and optionally ``valid/``, ``test/``) of shards in
:mod:`nemotron.data.packed_parquet`'s format. Every shard is read: its columns and their
types, the 0/1 mask as long as the tokens, token ids inside the tokenizer's vocabulary, and
sub-sequence starts that begin at 0, increase and stay inside the pack. The pack size is the
one the shards record, else the longest pack. The artifact's directory links the split folders.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nemo_runspec.errors import ConfigError, DataError
from nemotron.data.packed_parquet import COLUMNS, PACK_SIZE_KEY, check_schema, recorded_pack_size, shards
from nemotron.data.splits import SPLITS
from nemotron.stages.imports.options import require_tokenizer
from nemotron.stages.imports.output import MARKER, data_root, link_directory, source_info, tracking_for
from nemotron.stages.imports.paths import check_tree, found, non_empty_dir, resolve
from nemotron.stages.step import Output, Produced, run_step

SFT_SPLITS = SPLITS


@dataclass
class _SplitStats:
    path: Path
    packs: int = 0
    sequences: int = 0
    tokens: int = 0
    longest: int = 0
    longest_file: Path | None = None
    pack_sizes: set[int] = field(default_factory=set)


def import_sft(path, name: str, tokenizer: str | None, chat_template: str | None, root):
    from nemotron.kit.artifacts import ChatTemplateInfo, PackedSplit, SFTDataArtifact

    tracking = tracking_for(root, name, "SFTDataArtifact")
    expected = "train/ (and optionally valid/, test/) folders of packed Parquet shards"
    given, resolved = resolve(path)
    non_empty_dir(resolved, given, expected)
    listing = check_tree(resolved)
    if not (resolved / "train").is_dir():
        raise ConfigError(f"{given}: expected {expected}; found: {found(resolved)}")
    loaded = require_tokenizer(tokenizer, "sft", recorded_in=resolved)
    template_source, template_path = "", None
    if chat_template is not None:
        template_path = Path(chat_template).expanduser().absolute()
        if not template_path.is_file():
            raise ConfigError(f"chat template {template_path} does not exist")
        template_source = template_path.read_text(encoding="utf-8")
    template_sha256 = hashlib.sha256(template_source.encode("utf-8")).hexdigest()

    stats = {}
    for split in SFT_SPLITS:
        directory = resolved / split
        files = shards(directory) if directory.is_dir() else []
        if not files:
            if split == "train":
                raise ConfigError(f"{directory}: no Parquet shards (*.parquet); found: {found(directory)}")
            continue
        stats[split] = _SplitStats(directory)
        for file in files:
            _read_packed_shard(file, stats[split], loaded.vocab_size)
    pack_size, pack_size_source, longest = _pack_size(given, stats)
    num_packs = sum(s.packs for s in stats.values())
    tokens = sum(s.tokens for s in stats.values())

    def produce(out: Output) -> Produced:
        link_directory(out.directory, {split: s.path for split, s in stats.items()})
        artifact = SFTDataArtifact(
            path=out.directory,
            pack_size=pack_size,
            num_packs=num_packs,
            num_sequences=sum(s.sequences for s in stats.values()),
            packing_efficiency=round(100.0 * tokens / max(num_packs * pack_size, 1), 3),
            splits={split: PackedSplit(path=str(out.directory / split), num_packs=s.packs, num_sequences=s.sequences)
                    for split, s in stats.items()},
            tokenizer=loaded.info,
            chat_template=ChatTemplateInfo(name="imported", sha256=template_sha256),
            sources=[source_info(given, resolved)],
            metadata={
                "imported_from": str(given),
                "pack_size_source": pack_size_source,
                "dataset_max_seqlen": longest,
                "chat_template_path": str(template_path) if template_path else None,
                "eod_id": loaded.eod_id,
                "pad_id": loaded.pad_id,
            },
        )
        return Produced(artifact, f"{artifact.num_sequences} sequences in {num_packs} packs of {pack_size} "
                                  f"({artifact.packing_efficiency:.1f}% full), imported from {given}")

    identity = {"kind": "sft-data", "source": str(resolved), "files": listing, "tokenizer": loaded.info.sha256,
                "template": template_sha256}
    return run_step(tracking, SFTDataArtifact, name, root=data_root(), identity=identity, marker=MARKER,
                    produce=produce, what="import")


def _pack_size(given: Path, stats: dict[str, _SplitStats]) -> tuple[int, str, int]:
    """(pack size, where it comes from, longest pack): the one size all shards record, else
    the longest pack."""
    pack_sizes = set().union(*(s.pack_sizes for s in stats.values()))
    longest = max(s.longest for s in stats.values())
    if len(pack_sizes) > 1:
        raise DataError(f"{given}: shards record different pack sizes ({', '.join(map(str, sorted(pack_sizes)))})")
    source = f"parquet metadata {PACK_SIZE_KEY.decode()}" if pack_sizes else "longest pack"
    pack_size = pack_sizes.pop() if pack_sizes else longest
    if longest > pack_size:  # a shard without the metadata, beside ones with it
        too_long = next(s for s in stats.values() if s.longest > pack_size)
        raise DataError(f"{too_long.longest_file}: a pack of {too_long.longest} tokens, longer than the pack size "
                        f"{pack_size} the other shards record")
    if pack_size < 2:
        raise DataError(f"{given}: the longest pack has {pack_size} tokens; a pack needs at least 2")
    return pack_size, source, longest


def _read_packed_shard(file: Path, stats: _SplitStats, vocab_size: int) -> None:
    """Check one packed Parquet shard's schema and rows; add its counts to ``stats``."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(file)
        schema = parquet.schema_arrow
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{file}: not a readable Parquet file ({str(err).splitlines()[0]})") from None
    check_schema(file, schema)
    recorded = recorded_pack_size(file, schema)
    if recorded is not None:
        stats.pack_sizes.add(recorded)
    try:
        table = parquet.read(columns=list(COLUMNS))
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{file}: cannot read its rows ({str(err).splitlines()[0]})") from None
    ids, mask, starts = (table.column(c).combine_chunks() for c in COLUMNS)
    lengths = pc.list_value_length(ids).fill_null(0).to_numpy(zero_copy_only=False)
    mask_lengths = pc.list_value_length(mask).fill_null(0).to_numpy(zero_copy_only=False)
    if (bad := np.flatnonzero(lengths != mask_lengths)).size:
        raise DataError(f"{file}: row {bad[0]} has {lengths[bad[0]]} input_ids but {mask_lengths[bad[0]]} loss_mask values")
    values = pc.list_flatten(ids)
    if len(values) and (int(pc.min(values).as_py()) < 0 or int(pc.max(values).as_py()) >= vocab_size):
        raise DataError(f"{file}: token ids outside the tokenizer's vocabulary [0, {vocab_size})",
                        hint="pass the tokenizer the data was made with")
    mask_values = pc.list_flatten(mask)
    if len(mask_values) and not pa.types.is_boolean(mask_values.type) and (
            int(pc.min(mask_values).as_py()) < 0 or int(pc.max(mask_values).as_py()) > 1):
        raise DataError(f"{file}: loss_mask values other than 0 and 1")
    _check_starts(file, starts, lengths)
    longest = int(lengths.max(initial=0))
    if recorded is not None and longest > recorded:
        raise DataError(f"{file}: a pack of {longest} tokens, longer than its recorded pack size {recorded}")
    stats.packs += len(lengths)
    stats.sequences += len(pc.list_flatten(starts))
    stats.tokens += int(lengths.sum())
    if longest > stats.longest:
        stats.longest, stats.longest_file = longest, file


def _check_starts(file: Path, starts, lengths: np.ndarray) -> None:
    """Every non-empty pack's sub-sequence starts: first 0, increasing, inside the pack."""
    import pyarrow.compute as pc

    counts = pc.list_value_length(starts).fill_null(0).to_numpy(zero_copy_only=False)
    values = pc.list_flatten(starts).to_numpy(zero_copy_only=False)
    rows = np.repeat(np.arange(len(counts)), counts)          # the row of every start
    firsts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)[counts > 0]
    problems = {
        "has tokens but no seq_start_id": np.flatnonzero((counts == 0) & (lengths > 0)),
        "does not start its first sub-sequence at 0": np.flatnonzero(counts > 0)[values[firsts] != 0],
        "has a seq_start_id past its end": rows[values >= lengths[rows]],
        "has seq_start_id values that do not increase": rows[1:][(rows[1:] == rows[:-1]) & (np.diff(values) <= 0)],
    }
    for what, bad in problems.items():
        if len(bad):
            raise DataError(f"{file}: row {int(bad[0])} {what}")

