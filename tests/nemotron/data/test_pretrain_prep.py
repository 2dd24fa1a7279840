"""Stage-0 prep as a library: Megatron-Core reads the output, tokens match a direct
tokenization, output is deterministic, resumable and sliceable, bad input is refused."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from nemo_runspec.errors import ConfigError, DataError
from nemotron.data.indexed_dataset import IndexedDatasetWriter, blend_prefixes, check_shards, read_index
from nemotron.data.pretrain_prep import TokenizeSettings, plan, prepare
from nemotron.data.text_sources import DatasetSpec
from nemotron.data.tokenizer import load_tokenizer
from nemotron.recipes import ASSETS_DIR

TOKENIZER = str(ASSETS_DIR / "tokenizers" / "tiny-bpe")
SAMPLES = ASSETS_DIR / "samples" / "pretrain"


def corpus(tmp_path, n=300):
    docs = [json.loads(line)["text"] for line in (SAMPLES / "python_docs.jsonl").read_text().splitlines()]
    texts = [docs[i % len(docs)] + f" (copy {i})" for i in range(n)]
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path, texts


# What conf/data_prep/pretrain/tiny.yaml sets (the schema validates it there).
OPTIONS = {"on_error": "fail", "batch_docs": 256, "add_bos": False, "append_eod": True}


def run(out, datasets, *, shards=3, workers=0, split_ratios=(0.8, 0.1, 0.1), **kw):
    units, files = plan(datasets, shards)
    settings = TokenizeSettings(output_dir=str(out), tokenizer_path=TOKENIZER, split_ratios=split_ratios,
                                **{**OPTIONS, **kw})
    return prepare(units, files, settings, workers=workers, show_progress=False), units, files, settings


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every output file by relative path, absolute paths in blend.json made relative."""
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            files[str(path.relative_to(root))] = path.read_bytes().replace(str(root).encode(), b"<ROOT>")
    return files


def test_megatron_reads_every_shard_and_tokens_match_a_direct_tokenization(tmp_path):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    path, texts = corpus(tmp_path)
    outcome, *_ = run(tmp_path / "out", [DatasetSpec(name="docs", path=str(path))])
    blend = json.loads((tmp_path / "out" / "blend.json").read_text())
    tok = load_tokenizer(TOKENIZER)
    expected = sorted(tuple(tok.tokenizer.encode(t, add_special_tokens=False).ids + [tok.eod_id]) for t in texts)
    seen = []
    for split in ("train", "valid", "test"):
        prefixes = blend[split][1::2]
        assert prefixes, f"no {split} shards"
        for prefix in prefixes:
            dataset = IndexedDataset(prefix)
            assert dataset.index.dtype == np.uint16
            seen += [tuple(int(t) for t in dataset[i]) for i in range(len(dataset))]
            assert read_index(prefix).num_sequences == len(dataset)
    assert sorted(seen) == expected
    assert outcome.tokens == sum(len(s) for s in seen) == sum(outcome.split_tokens.values())
    assert outcome.split_documents["valid"] > 0 and outcome.split_documents["test"] > 0


def test_gpt_dataset_builds_from_the_written_blend(tmp_path):
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from megatron.core.datasets.utils import get_blend_from_list

    class Tokenizer:  # what GPTDataset needs of a tokenizer
        vocab_size, eod, eos, pad, unique_identifiers = 2048, 0, 0, 1, {"class": "tiny-bpe"}

    path, _ = corpus(tmp_path)
    run(tmp_path / "out", [DatasetSpec(name="docs", path=str(path), weight=0.7),
                           DatasetSpec(name="more", path=str(path), weight=0.3)])
    blend = json.loads((tmp_path / "out" / "blend.json").read_text())
    config = GPTDatasetConfig(
        random_seed=1234, sequence_length=32, path_to_cache=None, tokenizer=Tokenizer(),
        blend_per_split=[get_blend_from_list(blend[s]) for s in ("train", "valid", "test")],
        reset_position_ids=False, reset_attention_mask=False, eod_mask_loss=False,
    )
    train, valid, test = BlendedMegatronDatasetBuilder(GPTDataset, [64, 8, 8], lambda: True, config).build()
    assert len(train) >= 64 and len(valid) >= 8 and len(test) >= 8
    sample = train[0]
    assert sample["tokens"].shape == (32,) and int(sample["tokens"].max()) < 2048


def test_output_is_byte_identical_across_runs_and_worker_counts(tmp_path):
    path, _ = corpus(tmp_path)
    datasets = [DatasetSpec(name="docs", path=str(path)), DatasetSpec(name="gettysburg", path=str(SAMPLES / "gettysburg.txt"), split="train")]
    run(tmp_path / "a", datasets, workers=0)
    run(tmp_path / "b", datasets, workers=2)
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")


def test_slices_then_finalize_equal_a_single_run(tmp_path):
    from nemotron.data.pretrain_prep import PrepOutcome, finalize_blend

    path, _ = corpus(tmp_path)
    datasets = [DatasetSpec(name="docs", path=str(path))]
    run(tmp_path / "whole", datasets)
    units, files = plan(datasets, 3)
    settings = TokenizeSettings(output_dir=str(tmp_path / "sliced"), tokenizer_path=TOKENIZER, split_ratios=(0.8, 0.1, 0.1),
                                **OPTIONS)
    first = prepare(units, files, settings, workers=0, slice_count=2, slice_index=0, finalize=False, show_progress=False)
    assert first.blend_path is None and first.units_run == 2
    with pytest.raises(DataError, match="1 of 3 units are not prepared yet"):
        finalize_blend(PrepOutcome(tmp_path / "sliced", None, 3, 0, 0), units, files, settings.split_ratios)
    prepare(units, files, settings, workers=0, slice_count=2, slice_index=1, finalize=False, show_progress=False)
    finalize_blend(PrepOutcome(tmp_path / "sliced", None, 3, 0, 0), units, files, settings.split_ratios)
    assert tree_bytes(tmp_path / "whole") == tree_bytes(tmp_path / "sliced")


def test_a_rerun_only_runs_missing_units(tmp_path):
    path, _ = corpus(tmp_path)
    datasets = [DatasetSpec(name="docs", path=str(path))]
    first, units, *_ = run(tmp_path / "out", datasets)
    before = tree_bytes(tmp_path / "out")
    (tmp_path / "out" / "units" / "docs" / "part-00001.json").unlink()
    second, *_ = run(tmp_path / "out", datasets)
    assert (first.units_run, second.units_run, second.units_reused) == (3, 1, 2)
    assert tree_bytes(tmp_path / "out") == before


def test_bos_and_eod_options(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "hello world"}\n')
    run(tmp_path / "a", [DatasetSpec(name="d", path=str(path), split="train")], append_eod=False)
    prefix = json.loads((tmp_path / "a" / "blend.json").read_text())["train"][1]
    tokens = np.fromfile(f"{prefix}.bin", np.uint16)
    assert tokens.tolist() == load_tokenizer(TOKENIZER).tokenizer.encode("hello world").ids
    with pytest.raises(ConfigError, match="no bos_token"):
        run(tmp_path / "b", [DatasetSpec(name="d", path=str(path), split="train")], add_bos=True)


def test_a_failing_unit_leaves_no_shard_looking_complete(tmp_path):
    path, _ = corpus(tmp_path, n=40)
    with open(path, "a") as f:
        f.write("{broken\n")
    with pytest.raises(DataError, match=r"corpus.jsonl:41: malformed JSON"):
        run(tmp_path / "out", [DatasetSpec(name="docs", path=str(path))], shards=1)
    left = [p.name for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert not any(name.endswith((".idx", ".json")) for name in left), left
    assert not any(".tmp" in name for name in left), left


def test_a_blend_with_nothing_to_train_on_or_an_empty_split_is_refused(tmp_path):
    empty, blank, one = tmp_path / "empty.jsonl", tmp_path / "blank.jsonl", tmp_path / "one.jsonl"
    empty.write_text("")
    blank.write_text('{"text": " "}\n')
    one.write_text('{"text": "hello world"}\n')  # its hash sends it to train
    with pytest.raises(DataError, match=re.escape(f"no documents in {empty} (skipped: none)")):
        run(tmp_path / "a", [DatasetSpec(name="d", path=str(empty))])
    with pytest.raises(DataError, match=re.escape(f"no documents in {blank} (skipped: {{'empty_document': 1}})")):
        run(tmp_path / "b", [DatasetSpec(name="d", path=str(blank))])
    with pytest.raises(DataError, match=re.escape(f"the valid split of 1 documents of {one} is empty, though "
                                                  "data_prep.splits.valid=0.1 asks for it")) as err:
        run(tmp_path / "c", [DatasetSpec(name="d", path=str(one))])
    assert err.value.hint == "add data, or set data_prep.splits.valid=0"
    assert not (tmp_path / "c" / "blend.json").exists()
    with pytest.raises(DataError, match="nothing to train on: the train split of 1 documents of"):
        run(tmp_path / "d", [DatasetSpec(name="d", path=str(one), split="valid")])
    # A split of ratio 0 may stay empty, and the ratios apply only to datasets without a split.
    assert run(tmp_path / "e", [DatasetSpec(name="d", path=str(one))], split_ratios=(1, 0, 0))[0].split_documents == {"train": 1}
    assert run(tmp_path / "f", [DatasetSpec(name="d", path=str(one), split="train")])[0].blend_path.is_file()


@pytest.mark.parametrize("key,value", [("shards_per_dataset", "abc"), ("batch_docs", "lots"), ("shards_per_dataset", 0)])
def test_integer_settings_name_their_key(key, value):
    from nemo_runspec.schema import validate
    from nemotron.schemas.data_prep import PretrainPrepConfig

    prep = {"blend": [{"name": "d", "path": "x"}], "splits": {"train": 1.0}, "shards_per_dataset": 2, "output_root": "data"}
    with pytest.raises(ConfigError, match=re.escape(f"data_prep.{key} must be an integer >= 1, got {value!r}")):
        validate(PretrainPrepConfig, {**prep, key: value}, "data_prep")


def test_bad_blends(tmp_path):
    path, _ = corpus(tmp_path, n=5)
    with pytest.raises(ConfigError, match="weights are all zero"):
        plan([DatasetSpec(name="a", path=str(path), weight=0)], 1)
    with pytest.raises(ConfigError, match="is empty"):
        plan([], 1)
    with pytest.raises(ConfigError, match="same name"):
        plan([DatasetSpec(name="a", path=str(path)), DatasetSpec(name="a", path=str(path))], 1)


def test_tokenizer_that_cannot_be_loaded(tmp_path):
    with pytest.raises(ConfigError, match="no tokenizer.json"):
        load_tokenizer(str(tmp_path))
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot load tokenizer"):
        load_tokenizer(str(tmp_path))


def test_read_index_rejects_damaged_shards(tmp_path):
    writer = IndexedDatasetWriter(tmp_path / "s", np.dtype(np.uint16))
    writer.add_documents(np.arange(10, dtype=np.uint16), np.array([4, 6]))
    writer.commit()
    assert read_index(tmp_path / "s").num_tokens == 10
    (tmp_path / "s.bin").write_bytes(b"\0" * 6)
    with pytest.raises(DataError, match="does not match its index"):
        read_index(tmp_path / "s")
    idx = (tmp_path / "s.idx").read_bytes()
    (tmp_path / "s.idx").write_bytes(idx[:-4])
    with pytest.raises(DataError, match="truncated index"):
        read_index(tmp_path / "s")
    (tmp_path / "s.idx").write_bytes(b"NOTMAGIC" + idx[8:])
    with pytest.raises(DataError, match="bad magic"):
        read_index(tmp_path / "s")


def test_check_shards_names_a_damaged_or_missing_shard_and_its_blend(tmp_path):
    path, _ = corpus(tmp_path, n=100)
    run(tmp_path / "out", [DatasetSpec(name="docs", path=str(path))], shards=1)
    blend_path = tmp_path / "out" / "blend.json"
    check_shards(blend_path)
    idx = Path(json.loads(blend_path.read_text())["valid"][1] + ".idx")
    whole = idx.read_bytes()
    idx.write_bytes(whole[:30])
    with pytest.raises(DataError, match=re.escape(f"{idx}: not a Megatron index (bad magic or truncated header) "
                                                  f"(a valid shard of {blend_path})")):
        check_shards(blend_path)
    idx.write_bytes(whole[:-8])
    with pytest.raises(DataError, match=re.escape(f"{idx}: truncated index")):
        check_shards(blend_path)
    idx.unlink()
    with pytest.raises(DataError, match=re.escape(f"{idx}: shard file missing (a valid shard of {blend_path})")):
        check_shards(blend_path)
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'nope.json'}: blend file missing")):
        check_shards(tmp_path / "nope.json")
    # Both of Megatron-Core's blend list forms (an imported blend may have no weights).
    assert blend_prefixes([0.5, "/a", "1", " /b"]) == ["/a", "/b"] == blend_prefixes(["/a", "/b"])


def test_a_dataset_artifact_as_source_is_pinned_in_lineage(tracking, tmp_path):
    from nemo_runspec.artifacts import Artifact, log_artifact
    from nemotron.data.text_sources import resolve_files

    class RawTextArtifact(Artifact):
        num_files: int

    raw = tmp_path / "raw"
    raw.mkdir()
    corpus_path, _ = corpus(raw, n=10)
    log_artifact(RawTextArtifact(path=raw, num_files=1), tracking, name="raw-web")
    spec = DatasetSpec(name="web", path="art://raw-web:latest", glob="*.jsonl")
    files = resolve_files(spec, tracking.resolve)
    assert [(f.path, f.input_uri) for f in files] == [(str(corpus_path), "art://raw-web:v1")]
    units, files = plan([spec], 1, tracking.resolve)
    settings = TokenizeSettings(output_dir=str(tmp_path / "out"), tokenizer_path=TOKENIZER, split_ratios=(1, 0, 0), **OPTIONS)
    outcome = prepare(units, files, settings, workers=0, show_progress=False)
    assert [s.uri for s in outcome.sources] == ["art://raw-web:v1"]
