"""Stage-1 prep as a library: a reader rebuilds every sub-sequence from the packed Parquet."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from nemo_runspec.errors import ConfigError, DataError
from nemotron.data.chat import load_template, to_messages, tokenize_conversation
from nemotron.data.splits import split_ratios
from nemotron.data.sft_prep import SFTSettings, prepare_sft
from nemotron.data.text_sources import DatasetSpec, resolve_files
from nemotron.data.tokenizer import load_tokenizer
from nemotron.recipes import ASSETS_DIR

TOKENIZER_DIR = ASSETS_DIR / "tokenizers" / "tiny-bpe"
SAMPLES = ASSETS_DIR / "samples" / "sft"


def run(out, datasets, **overrides):
    files = [f for d in datasets for f in resolve_files(d)]
    options = {"pack_size": 128, "split_ratios": split_ratios({"train": 0.8, "valid": 0.1, "test": 0.1}),
               "algorithm": "first_fit_shuffle", "seed": 1234, "on_error": "fail", "overlong": "truncate",
               "packs_per_shard": 1000, "workers": 0, **overrides}
    settings = SFTSettings(output_dir=str(out), tokenizer_path=str(TOKENIZER_DIR),
                           template=load_template("chatml", TOKENIZER_DIR), **options)
    return prepare_sft(datasets, files, settings, show_progress=False)


def read_subsequences(split_dir: Path):
    """The reader the label-alignment convention is written for: per sub-sequence
    (tokens, labels, label mask) with labels = tokens[1:], mask = loss_mask[1:]."""
    for path in sorted(split_dir.glob("*.parquet")):
        for row in pq.read_table(path).to_pylist():
            ids, mask, starts = row["input_ids"], row["loss_mask"], row["seq_start_id"]
            for start, end in zip(starts, starts[1:] + [len(ids)]):
                yield ids[start:end], ids[start + 1:end], mask[start + 1:end], mask[start:end]


def sample_datasets():
    return [DatasetSpec(name="qa", path=str(SAMPLES / "python_qa.jsonl")),
            DatasetSpec(name="arith", path=str(SAMPLES / "arithmetic.jsonl"))]


def test_every_subsequence_is_one_conversation_with_its_mask(tmp_path):
    outcome = run(tmp_path / "out", sample_datasets())
    tokenizer = load_tokenizer(str(TOKENIZER_DIR)).tokenizer
    template = load_template("chatml", TOKENIZER_DIR)
    expected, records = [], 0
    for name in ("python_qa.jsonl", "arithmetic.jsonl"):
        for line in (SAMPLES / name).read_text().splitlines():
            records += 1
            seq = tokenize_conversation(*to_messages(json.loads(line)), template, tokenizer)
            if seq.loss_mask[:128].any():  # else skipped as no_target_after_truncation
                expected.append((tuple(seq.input_ids[:128].tolist()), tuple(seq.loss_mask[:128].tolist())))
    seen = []
    for split in ("train", "valid", "test"):
        for tokens, labels, label_mask, token_mask in read_subsequences(tmp_path / "out" / split):
            assert labels == tokens[1:] and len(label_mask) == len(labels)
            assert token_mask[0] == 0  # a conversation never starts with a target
            seen.append((tuple(tokens), tuple(token_mask)))
    assert sorted(seen) == sorted(expected)
    assert outcome.num_sequences == len(expected) and outcome.truncated > 0 and outcome.dropped == 0
    assert outcome.skipped == {"no_target_after_truncation": records - len(expected)}
    assert set(outcome.splits) == {"train", "valid", "test"}


def test_parquet_schema_compression_and_pack_bounds(tmp_path):
    run(tmp_path / "out", sample_datasets())
    path = next((tmp_path / "out" / "train").glob("*.parquet"))
    parquet = pq.ParquetFile(path)
    schema = {f.name: str(f.type) for f in parquet.schema_arrow}
    assert schema == {"input_ids": "list<element: int32>", "loss_mask": "list<element: uint8>",
                      "seq_start_id": "list<element: int32>"}
    assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"
    assert parquet.schema_arrow.metadata[b"nemotron.loss_mask_alignment"] == b"token"
    for row in parquet.read().to_pylist():
        assert len(row["input_ids"]) <= 128 and row["seq_start_id"][0] == 0
        assert set(row["loss_mask"]) <= {0, 1}


@pytest.mark.parametrize("algorithm", ["first_fit_decreasing", "best_fit_decreasing", "first_fit_shuffle"])
def test_output_is_deterministic_and_a_rerun_rebuilds_only_missing_shards(tmp_path, algorithm):
    run(tmp_path / "a", sample_datasets(), algorithm=algorithm, packs_per_shard=20)
    run(tmp_path / "b", sample_datasets(), algorithm=algorithm, packs_per_shard=20)
    files = lambda root: {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}
    assert files(tmp_path / "a") == files(tmp_path / "b") and len(files(tmp_path / "a")) > 3
    victim = next((tmp_path / "a" / "train").glob("part-00001.parquet"))
    victim.unlink()
    run(tmp_path / "a", sample_datasets(), algorithm=algorithm, packs_per_shard=20)
    assert files(tmp_path / "a") == files(tmp_path / "b")


def test_workers_spool_byte_ranges_and_the_output_is_the_same(tmp_path):
    files = lambda root: {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}
    alone = run(tmp_path / "alone", sample_datasets(), packs_per_shard=20)
    parallel = run(tmp_path / "parallel", sample_datasets(), packs_per_shard=20, workers=2)  # 8 units per dataset
    assert files(tmp_path / "alone") == files(tmp_path / "parallel") and len(files(tmp_path / "alone")) > 3
    assert (parallel.conversations, parallel.truncated, parallel.skipped) == \
        (alone.conversations, alone.truncated, alone.skipped)
    assert not list((tmp_path / "parallel" / "spool").glob("units-*"))


def test_a_rerun_after_a_crash_keeps_the_units_that_were_spooled(tmp_path, monkeypatch):
    from nemotron.data import sft_prep

    files = lambda root: {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}
    run(tmp_path / "whole", sample_datasets())
    spool_unit, spooled = sft_prep._spool_unit, []

    def crash_on_the_second(unit, prefix, settings, report=None):
        if unit.dataset.name == "arith" and "crash" not in spooled:
            spooled.append("crash")
            raise KeyboardInterrupt
        spooled.append(unit.dataset.name)
        return spool_unit(unit, prefix, settings, report)

    monkeypatch.setattr(sft_prep, "_spool_unit", crash_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "crashed", sample_datasets())
    outcome = run(tmp_path / "crashed", sample_datasets())
    assert spooled == ["qa", "crash", "arith"]  # the qa unit was not tokenized again
    assert files(tmp_path / "crashed") == files(tmp_path / "whole") and outcome.conversations > 200


def test_with_workers_a_rerun_submits_only_the_units_left(tmp_path, monkeypatch):
    from concurrent.futures import ProcessPoolExecutor

    from nemotron.data import sft_prep

    files = lambda root: {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}
    run(tmp_path / "whole", sample_datasets(), workers=2)
    appended, submitted = [], []

    def append_then_crash(self, other):
        appended.append(other)
        if len(appended) == 3 * 5:  # five units' three splits: their markers are written
            raise KeyboardInterrupt
        return append(self, other)

    class CountingPool(ProcessPoolExecutor):
        def submit(self, *args, **kwargs):
            submitted.append(args[1])
            return super().submit(*args, **kwargs)

    append = sft_prep._Spool.append
    monkeypatch.setattr(sft_prep._Spool, "append", append_then_crash)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "crashed", sample_datasets(), workers=2)
    monkeypatch.setattr(sft_prep._Spool, "append", append)
    monkeypatch.setattr(sft_prep, "ProcessPoolExecutor", CountingPool)
    run(tmp_path / "crashed", sample_datasets(), workers=2)
    assert len(submitted) <= 16 - 5  # 8 units per dataset: at least the first five were kept
    assert files(tmp_path / "crashed") == files(tmp_path / "whole")


def test_overlong_conversations_are_truncated_or_dropped_and_counted(tmp_path):
    truncated = run(tmp_path / "t", sample_datasets())
    dropped = run(tmp_path / "d", sample_datasets(), overlong="drop")
    cut_to_nothing = truncated.skipped["no_target_after_truncation"]
    assert dropped.dropped == truncated.truncated + cut_to_nothing and truncated.truncated > 0
    assert dropped.truncated == 0 and dropped.skipped == {}
    assert dropped.num_sequences == truncated.num_sequences - truncated.truncated


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_bad_conversations_fail_with_file_and_line_or_are_counted(tmp_path):
    good = {"input": "q", "output": "a"}
    corpus = write(tmp_path / "c.jsonl", [good, good, {"messages": [{"role": "robot", "content": "x"}]},
                                          {"messages": [{"role": "user", "content": "only a question"}]}])
    for workers in (0, 2):  # a worker's error names the file and line too
        with pytest.raises(DataError, match=r"c.jsonl:3: messages\[0\] has unknown role 'robot'") as err:
            run(tmp_path / f"fail{workers}", [DatasetSpec(name="c", path=str(corpus), split="train")], workers=workers)
        assert "on_error=skip" in err.value.hint
        assert not list((tmp_path / f"fail{workers}").rglob("*.tmp"))  # the failed spools are cleaned up
    outcome = run(tmp_path / "skip", [DatasetSpec(name="c", path=str(corpus), split="train")], on_error="skip")
    assert outcome.skipped == {"unknown_role": 1, "no_assistant": 1} and outcome.num_sequences == 2


def test_nothing_to_pack_or_an_empty_split_is_refused(tmp_path):
    import re

    corpus = write(tmp_path / "c.jsonl", [{"input": f"q{i}", "output": f"a{i}"} for i in range(3)])  # all train by hash
    with pytest.raises(DataError, match=re.escape(f"no conversations left in {corpus} (skipped: none; dropped as longer "
                                                  "than data_prep.pack_size=4: 3)")):
        run(tmp_path / "a", [DatasetSpec(name="c", path=str(corpus))], pack_size=4, overlong="drop")
    with pytest.raises(DataError, match=re.escape(f"the valid split of 3 conversations of {corpus} is empty, though "
                                                  "data_prep.splits.valid=0.1 asks for it")):
        run(tmp_path / "b", [DatasetSpec(name="c", path=str(corpus))])
    assert not list((tmp_path / "b").glob("*/*.parquet"))
    # The ratios apply only to datasets without a split; a split of ratio 0 may stay empty.
    assert set(run(tmp_path / "c", [DatasetSpec(name="c", path=str(corpus), split="train")]).splits) == {"train"}
    assert set(run(tmp_path / "d", [DatasetSpec(name="c", path=str(corpus))], split_ratios=(1, 0, 0)).splits) == {"train"}


def test_pack_size_below_two_is_refused(tmp_path):
    # The schema of data_prep (nemotron.schemas.data_prep) is where these values are checked.
    from nemo_runspec.schema import validate
    from nemotron.schemas.data_prep import SFTPrepConfig

    prep = {"blend": [{"name": "c", "path": "x"}], "splits": {"train": 1.0}, "chat_template": "chatml",
            "pack_size": 128, "seed": 1, "output_root": "data"}
    with pytest.raises(ConfigError, match="data_prep.pack_size must be an integer >= 2, got 1"):
        validate(SFTPrepConfig, {**prep, "pack_size": 1}, "data_prep")
    with pytest.raises(ConfigError, match="data_prep.workers must be an integer >= 0, got -1"):
        validate(SFTPrepConfig, {**prep, "workers": -1}, "data_prep")
