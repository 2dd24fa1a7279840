"""Import steps on hand-built inputs: layout detection, what is computed, and every refusal."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from nemo_runspec.errors import ConfigError, DataError, NemotronError

REPO = Path(__file__).resolve().parents[3]
TOKENIZER = str(REPO / "nemotron" / "data" / "tokenizers" / "tiny-bpe")
ARCH = {"num_layers": 2, "hidden_size": 64}


@pytest.fixture
def registry(tmp_path, monkeypatch):
    monkeypatch.setenv("NEMOTRON_RUNS_ROOT", str(tmp_path / "runs"))
    monkeypatch.setenv("NEMOTRON_DATA_ROOT", str(tmp_path / "data"))
    return tmp_path / "registry"


def logged(registry: Path) -> list[str]:
    return sorted(str(p.relative_to(registry)) for p in registry.rglob("v*.json")) if registry.exists() else []


def dist_checkpoint(directory: Path) -> Path:
    directory.mkdir(parents=True)
    (directory / "metadata.json").write_text(json.dumps({"sharded_backend": "torch_dist", "sharded_backend_version": 1,
                                                         "common_backend": "torch", "common_backend_version": 1}))
    (directory / ".metadata").write_bytes(b"\x80meta")
    (directory / "__0_0.distcp").write_bytes(b"\x00" * 64)
    (directory / "common.pt").write_bytes(b"PK")
    return directory


def our_iteration(directory: Path, step: int) -> Path:
    dist_checkpoint(directory / "model")
    (directory / "ranks").mkdir()
    (directory / "ranks" / "0.pt").write_bytes(b"x")
    (directory / "trainer.json").write_text(json.dumps({"step": step, "architecture": ARCH}))
    return directory


def hf_directory(directory: Path, **config) -> Path:
    from safetensors.numpy import save_file

    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"],
                                                       "vocab_size": 4096, **config}))
    save_file({"w": np.zeros((2, 3), np.float32)}, str(directory / "model.safetensors"))
    return directory


def shard(prefix: Path, documents: list[list[int]], dtype=np.uint16) -> str:
    from nemotron.data.indexed_dataset import IndexedDatasetWriter

    writer = IndexedDatasetWriter(prefix, dtype)
    writer.add_documents(np.concatenate([np.array(d) for d in documents]), np.array([len(d) for d in documents]))
    writer.commit()
    return str(prefix)


def packs(file: Path, rows: list[tuple[list[int], list[int], list[int]]], pack_size: int | None = 8, **types) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {"input_ids": pa.int32(), "loss_mask": pa.uint8(), "seq_start_id": pa.int32(), **types}
    table = pa.table({name: pa.array([row[i] for row in rows], pa.list_(kind))
                      for i, (name, kind) in enumerate(columns.items()) if kind is not None})
    if pack_size is not None:
        table = table.replace_schema_metadata({"nemotron.pack_size": str(pack_size)})
    file.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, file)


def prompts(file: Path, records: list) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))


# -- models ----------------------------------------------------------------------------------------

def test_layouts_and_their_steps(tmp_path, registry):
    from nemotron.stages.imports import import_model

    ours = our_iteration(tmp_path / "run" / "checkpoints" / "iter_0000004", 4)
    (tmp_path / "run" / "checkpoints" / "latest").write_text("iter_0000004")
    (tmp_path / "run" / "checkpoints" / "iter_0000006.tmp").mkdir()  # a checkpoint being written: ignored
    for name, path in (("run", tmp_path / "run" / "checkpoints"), ("iter", ours), ("model", ours / "model")):
        model = import_model("nano3", "pretrain", path, name=name, root=registry)
        assert (model.format, model.step, model.metadata["step_source"]) == ("megatron", 4, "trainer.json")
        assert model.metadata["architecture"] == ARCH and "subset" in model.metadata["architecture_source"]
        assert model.metadata["source_checkpoint"] == str(ours) and model.metadata["imported_from"] == str(path)
        assert (model.path / "model" / "metadata.json").is_file() and (model.path / "trainer.json").is_file()
        assert not (model.path / "ranks").is_symlink() or (model.path / "ranks").resolve() == ours / "ranks"
    # the same checkpoint under the same name, whichever path names it: logged once
    assert import_model("nano3", "pretrain", ours, name="run", root=registry).version == 1
    assert json.loads((ours / "model" / "metadata.json").read_text())["sharded_backend"] == "torch_dist"
    assert not (ours / "metadata.json").exists(), "PATH is never written to"

    mlm = tmp_path / "mlm"
    dist_checkpoint(mlm / "iter_0000050")
    (mlm / "latest_checkpointed_iteration.txt").write_text("50\n")
    model = import_model("nano3", "pretrain", mlm, name="mlm", root=registry)
    assert (model.step, model.metadata["step_source"]) == (50, "latest_checkpointed_iteration.txt")
    assert json.loads((model.path / "trainer.json").read_text())["step"] == 50
    assert (model.path / "model").resolve() == (mlm / "iter_0000050").resolve()
    assert json.loads((mlm / "iter_0000050" / "metadata.json").read_text())["sharded_backend"] == "torch_dist"
    model = import_model("nano3", "sft", mlm / "iter_0000050", step=60, name="mlm", root=registry)
    assert (model.stage, model.step) == ("sft", 60)
    assert (model.metadata["recorded_step"], model.metadata["step_source"]) == (50, "--step")

    hf = hf_directory(tmp_path / "hf")
    (hf / "trainer_state.json").write_text(json.dumps({"global_step": 30}))
    model = import_model("nano3", "rl", hf, tokenizer=TOKENIZER, root=registry)
    assert (model.format, model.step, model.metadata["hf_architecture"]) == ("hf", 30, "LlamaForCausalLM")
    assert model.metadata["vocab_size"] == 2048 and len(model.metadata["tokenizer_sha256"]) == 64


def test_a_latest_pointer_to_an_incomplete_checkpoint_falls_back_to_the_newest_complete_one(tmp_path, registry):
    from nemotron.stages.imports import import_model

    our_iteration(tmp_path / "checkpoints" / "iter_0000002", 2)
    our_iteration(tmp_path / "checkpoints" / "iter_0000004", 4).joinpath("trainer.json").unlink()
    (tmp_path / "checkpoints" / "latest").write_text("iter_0000004")
    assert import_model("nano3", "pretrain", tmp_path / "checkpoints", root=registry).step == 2


def test_same_import_twice_is_logged_once(tmp_path, registry):
    from nemotron.stages.imports import import_model

    our_iteration(tmp_path / "iter_0000003", 3)
    first = import_model("nano3", "pretrain", tmp_path / "iter_0000003", root=registry)
    again = import_model("nano3", "pretrain", tmp_path / "iter_0000003", root=registry)
    assert again.version == first.version == 1 and logged(registry) == ["nano3-pretrain-model-imported/versions/v1.json"]


def _escaping(tmp_path):
    our_iteration(tmp_path / "ckpt", 1)
    (tmp_path / "outside.bin").write_bytes(b"x")
    (tmp_path / "ckpt" / "extra.bin").symlink_to(tmp_path / "outside.bin")


def _looping(tmp_path):
    our_iteration(tmp_path / "ckpt", 1)
    (tmp_path / "ckpt" / "a").symlink_to(tmp_path / "ckpt" / "b")
    (tmp_path / "ckpt" / "b").symlink_to(tmp_path / "ckpt" / "a")


def _hf_missing_shard(tmp_path):
    hf = hf_directory(tmp_path / "ckpt")
    (hf / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"w": "model.safetensors", "v": "model-00002-of-00002.safetensors"}}))


def _hf_corrupt(tmp_path):
    hf = hf_directory(tmp_path / "ckpt")
    data = (hf / "model.safetensors").read_bytes()
    (hf / "model.safetensors").write_bytes(data[:8] + b"{not json" + data[17:])


@pytest.mark.parametrize("build,args,fragment", [
    (lambda t: None, {}, "does not exist"),
    (lambda t: (t / "ckpt").mkdir(), {}, "is empty"),
    (lambda t: [(t / "ckpt").mkdir(), (t / "ckpt" / "a.txt").write_text("a"), (t / "ckpt" / "b.bin").write_bytes(b"b")], {},
     "expected a Megatron distributed checkpoint (metadata.json) or a Hugging Face directory (config.json); found: a.txt, b.bin"),
    (_escaping, {}, "points outside the imported directory"),
    (_looping, {}, "a symlink loop"),
    (lambda t: dist_checkpoint(t / "ckpt"), {}, "the checkpoint records no step"),
    (lambda t: dist_checkpoint(t / "ckpt").joinpath("__0_0.distcp").unlink(), {"step": 1}, "without shard files (*.distcp)"),
    (lambda t: dist_checkpoint(t / "ckpt").joinpath("common.pt").unlink(), {"step": 1}, "without common.pt"),
    (lambda t: [(t / "ckpt" / "mp_rank_00").mkdir(parents=True)], {}, "found: mp_rank_00/"),
    (lambda t: [(t / "ckpt").mkdir(), (t / "ckpt" / "config.json").write_text("{}")], {}, "no model_type or architectures"),
    (lambda t: [(t / "ckpt").mkdir(), (t / "ckpt" / "config.json").write_text('{"model_type": "llama"}')], {},
     "no weights (expected *.safetensors or pytorch_model*.bin)"),
    (_hf_missing_shard, {"step": 1}, "lists model-00002-of-00002.safetensors, which is missing"),
    (_hf_corrupt, {"step": 1}, "not a readable safetensors file"),
    (lambda t: [hf_directory(t / "ckpt"), (t / "ckpt" / "pytorch_model.bin").write_bytes(b"junk")], {"step": 1},
     "neither a zip archive nor a pickle"),
    (lambda t: hf_directory(t / "ckpt", vocab_size=100), {"step": 1, "tokenizer": TOKENIZER},
     "has 2048 tokens, more than the model's vocab_size 100"),
    (lambda t: [(t / "ckpt").mkdir(), (t / "ckpt" / "latest_checkpointed_iteration.txt").write_text("7")], {},
     "names iter_0000007, which is not there"),
    (lambda t: [our_iteration(t / "other", 1), (t / "ckpt").mkdir(), (t / "ckpt" / "latest").write_text("../other")], {},
     "names '../other', which is not a checkpoint in"),
    (lambda t: [hf_directory(t / "ckpt"), (t / "ckpt" / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"w": "../model.safetensors"}}))], {"step": 1}, "lists ../model.safetensors, not a file of"),
])
def test_bad_checkpoints_are_refused_and_nothing_is_logged(tmp_path, registry, build, args, fragment):
    from nemotron.stages.imports import import_model

    build(tmp_path)
    with pytest.raises(NemotronError) as err:
        import_model("nano3", "pretrain", tmp_path / "ckpt", root=registry, **args)
    assert fragment in str(err.value) and "\n" not in str(err.value)
    assert logged(registry) == [] and not (tmp_path / "runs").exists()


def test_unknown_stage_and_a_name_bound_to_another_type(tmp_path, registry):
    from nemotron.stages.imports import import_data, import_model

    our_iteration(tmp_path / "iter_0000001", 1)
    with pytest.raises(ConfigError, match="unknown stage 'dpo'"):
        import_model("nano3", "dpo", tmp_path / "iter_0000001", root=registry)
    prompts(tmp_path / "rl" / "train.jsonl", [{"problem": "1+1?", "answer": 2}])
    import_data("nano3", "rl", tmp_path / "rl", name="taken", root=registry)
    with pytest.raises(NemotronError, match="bound to SplitJsonlDataArtifact, not ModelArtifact"):
        import_model("nano3", "pretrain", tmp_path / "iter_0000001", name="taken", root=registry)


# -- pretraining data ----------------------------------------------------------------------------

def test_blend_totals_per_split_and_a_plain_data_path_list(tmp_path, registry):
    from nemotron.stages.imports import import_data

    a = shard(tmp_path / "shards" / "a", [[1, 2, 3], [4, 5]])
    b = shard(tmp_path / "shards" / "b", [[6, 7, 8, 9]])
    (tmp_path / "blend.json").write_text(json.dumps({"train": [0.7, a, 0.3, b], "valid": [b], "test": []}))
    data = import_data("nano3", "pretrain", tmp_path / "blend.json", tokenizer=TOKENIZER, root=registry)
    assert (data.total_tokens, data.total_sequences, data.num_shards) == (13, 4, 3)
    assert data.split_tokens == {"train": 9, "valid": 4} and data.split_sequences == {"train": 3, "valid": 1}
    assert data.tokenizer.vocab_size == 2048 and data.metadata["eod_id"] is not None
    assert json.loads(data.blend_path.read_text()) == {"train": [0.7, a, 0.3, b], "valid": [b]}
    assert data.blend_path == data.path / "blend.json" and data.metadata["imported_from"] == str(tmp_path / "blend.json")

    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "blend.json").write_text(json.dumps(["1", a, "1", b]))
    data = import_data("nano3", "pretrain", tmp_path / "plain", name="plain", tokenizer=TOKENIZER, root=registry)
    assert data.split_tokens == {"train": 9} and json.loads(data.blend_path.read_text()) == {"train": ["1", a, "1", b]}


def _blend(tmp_path, entries):
    (tmp_path / "blend.json").write_text(json.dumps({"train": entries}))


def _corrupt_idx(tmp_path):
    prefix = shard(tmp_path / "s", [[1, 2]])
    Path(prefix + ".idx").write_bytes(b"garbage")
    _blend(tmp_path, [prefix])


@pytest.mark.parametrize("build,fragment", [
    (lambda t: _blend(t, [str(t / "missing")]), "missing.idx: shard file missing"),
    (lambda t: [shard(t / "s", [[1]]), Path(f"{t}/s.bin").unlink(), _blend(t, [str(t / "s")])], "s.bin: shard file missing"),
    (_corrupt_idx, "s.idx: not a Megatron index"),
    (lambda t: [shard(t / "s", [[1, 2]]), open(f"{t}/s.bin", "ab").write(b"xx"), _blend(t, [str(t / "s")])],
     "does not match its index"),
    (lambda t: _blend(t, ["relative/prefix"]), "is relative"),
    (lambda t: (t / "blend.json").write_text('{"training": []}'), "unknown split 'training'"),
    (lambda t: (t / "blend.json").write_text("{}"), "lists no shards"),
    (lambda t: (t / "blend.json").write_text("{oops"), "not valid JSON"),
    (lambda t: _blend(t, [shard(t / "f", [[1]], np.float32)]), "holds float32 values, not token ids"),
])
def test_bad_blends_are_refused_naming_the_file(tmp_path, registry, build, fragment):
    from nemotron.stages.imports import import_data

    build(tmp_path)
    with pytest.raises(DataError) as err:
        import_data("nano3", "pretrain", tmp_path / "blend.json", tokenizer=TOKENIZER, root=registry)
    assert fragment in str(err.value)
    assert logged(registry) == [] and not (tmp_path / "data").exists()


def test_token_dtype_must_hold_the_vocabulary_and_the_tokenizer_is_required(tmp_path, registry, monkeypatch):
    import dataclasses

    import nemotron.data.tokenizer as tokenizers
    from nemotron.stages.imports import import_data

    _blend(tmp_path, [shard(tmp_path / "s", [[1, 2]])])
    with pytest.raises(ConfigError, match="needs the tokenizer"):
        import_data("nano3", "pretrain", tmp_path / "blend.json", root=registry)
    real = tokenizers.load_tokenizer(TOKENIZER)
    big = dataclasses.replace(real, info=real.info.model_copy(update={"vocab_size": 70000}))
    monkeypatch.setattr(tokenizers, "load_tokenizer", lambda path, name=None: big)
    with pytest.raises(DataError, match="stores tokens as uint16, which holds ids below 65536, but tokenizer .* has 70000"):
        import_data("nano3", "pretrain", tmp_path / "blend.json", tokenizer=TOKENIZER, root=registry)
    assert logged(registry) == []


# -- SFT data ------------------------------------------------------------------------------------

GOOD = ([5, 6, 7, 8, 9], [0, 1, 1, 0, 1], [0, 3])


def test_packed_parquet_counts_and_pack_size(tmp_path, registry):
    import hashlib

    import pyarrow as pa

    from nemotron.stages.imports import import_data

    packs(tmp_path / "sft" / "train" / "part-00000.parquet", [GOOD, ([1, 2, 3], [0, 1, 1], [0])])
    packs(tmp_path / "sft" / "train" / "part-00001.parquet", [([4, 5], [1, 1], [0])])
    packs(tmp_path / "sft" / "valid" / "part-00000.parquet", [GOOD])
    template = tmp_path / "t.jinja"
    template.write_text("{{ messages }}")
    data = import_data("nano3", "sft", tmp_path / "sft", tokenizer=TOKENIZER, chat_template=str(template), root=registry)
    assert (data.pack_size, data.num_packs, data.num_sequences) == (8, 4, 6)
    assert data.packing_efficiency == pytest.approx(100 * 15 / 32, abs=1e-3)
    assert {s: (p.num_packs, p.num_sequences) for s, p in data.splits.items()} == {"train": (3, 4), "valid": (1, 2)}
    assert data.chat_template.name == "imported"
    assert data.chat_template.sha256 == hashlib.sha256(b"{{ messages }}").hexdigest()
    assert sorted(p.name for p in (data.path / "train").glob("*.parquet")) == ["part-00000.parquet", "part-00001.parquet"]

    bools = lambda row: (row[0], [bool(m) for m in row[1]], row[2])  # noqa: E731
    packs(tmp_path / "nometa" / "train" / "p.parquet", [bools(GOOD), bools(([1, 2, 3], [0, 1, 1], [0]))],
          pack_size=None, input_ids=pa.int64(), loss_mask=pa.bool_())
    data = import_data("nano3", "sft", tmp_path / "nometa", name="nometa", tokenizer=TOKENIZER, root=registry)
    assert (data.pack_size, data.metadata["pack_size_source"]) == (5, "longest pack")
    assert data.chat_template.sha256 == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize("rows,types,fragment", [
    ([GOOD], {"loss_mask": None}, "no column 'loss_mask'"),
    ([GOOD], {"loss_mask": "float32"}, "column 'loss_mask' is list<float>, expected list<int8|uint8|bool>"),
    ([([1, 2], [1], [0])], {}, "row 0 has 2 input_ids but 1 loss_mask values"),
    ([([1, 2], [1, 1], [1])], {}, "row 0 does not start its first sub-sequence at 0"),
    ([GOOD, ([1, 2], [1, 1], [0, 2])], {}, "row 1 has a seq_start_id past its end"),
    ([([1, 2, 3], [1, 1, 1], [0, 2, 2])], {}, "row 0 has seq_start_id values that do not increase"),
    ([([1, 2], [1, 1], [])], {}, "row 0 has tokens but no seq_start_id"),
    ([([1, 5000], [1, 1], [0])], {}, "token ids outside the tokenizer's vocabulary [0, 2048)"),
    ([([1, 2], [1, 2], [0])], {}, "loss_mask values other than 0 and 1"),
    ([([1] * 9, [1] * 9, [0])], {}, "a pack of 9 tokens, longer than its recorded pack size 8"),
])
def test_bad_packed_parquet_is_refused(tmp_path, registry, rows, types, fragment):
    import pyarrow as pa

    from nemotron.stages.imports import import_data

    packs(tmp_path / "sft" / "train" / "part-00000.parquet", rows,
          **{k: (getattr(pa, v)() if v else None) for k, v in types.items()})
    with pytest.raises(DataError) as err:
        import_data("nano3", "sft", tmp_path / "sft", tokenizer=TOKENIZER, root=registry)
    assert fragment in str(err.value) and "part-00000.parquet" in str(err.value)
    assert logged(registry) == [] and not (tmp_path / "data").exists()


def test_sft_folder_layout_errors(tmp_path, registry):
    from nemotron.stages.imports import import_data

    (tmp_path / "sft" / "train").mkdir(parents=True)
    with pytest.raises(ConfigError, match="no Parquet shards"):
        import_data("nano3", "sft", tmp_path / "sft", tokenizer=TOKENIZER, root=registry)
    (tmp_path / "sft" / "train").rmdir()
    (tmp_path / "sft" / "x.parquet").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"expected train/ \(and optionally valid/, test/\) .*; found: x.parquet"):
        import_data("nano3", "sft", tmp_path / "sft", tokenizer=TOKENIZER, root=registry)
    (tmp_path / "sft" / "train").mkdir()
    (tmp_path / "sft" / "train" / "p.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="p.parquet: not a readable Parquet file"):
        import_data("nano3", "sft", tmp_path / "sft", tokenizer=TOKENIZER, root=registry)
    with pytest.raises(ConfigError, match="--chat-template applies to sft data only"):
        import_data("nano3", "rl", tmp_path / "sft", chat_template="x.jinja", root=registry)
    assert logged(registry) == []


# -- RL data -------------------------------------------------------------------------------------

def test_split_jsonl_counts_with_and_without_a_manifest(tmp_path, registry, capsys):
    from nemotron.stages.imports import import_data

    prompts(tmp_path / "rl" / "train.jsonl", [{"problem": "1+1?", "answer": 2},
                                              {"messages": [{"role": "user", "content": "hi"}]}])
    prompts(tmp_path / "rl" / "test.jsonl", [{"question": "2+2?", "expected_answer": "4"}])
    data = import_data("nano3", "rl", tmp_path / "rl", root=registry)
    assert (data.train_count, data.val_count, data.test_count) == (2, 0, 1)
    assert data.val_path is None and data.train_path == data.path / "train.jsonl" and data.train_path.is_file()
    assert data.metadata["without_answer"] == 1 and "1 prompts have no answer" in capsys.readouterr().out
    assert data.record_schema is None

    (tmp_path / "rl" / "manifest.json").write_text(json.dumps({
        "schema": "nemotron.rl_prompts", "schema_version": 1,
        "files": {"train": {"path": "train.jsonl", "count": 3}, "test": {"path": "test.jsonl", "count": 1}}}))
    with pytest.raises(DataError, match="train.jsonl: 2 lines, but .*manifest.json says 3"):
        import_data("nano3", "rl", tmp_path / "rl", root=registry)
    assert logged(registry) == ["nano3-rl-data-imported/versions/v1.json"]


@pytest.mark.parametrize("lines,fragment", [
    (["not json"], "train.jsonl:1: not JSON"),
    ([{"problem": "a", "answer": 1}, "[1, 2]"], "train.jsonl:2: record is a JSON list, not an object"),
    ([{"text": "no prompt here"}], "train.jsonl:1: no prompt"),
    ([{"problem": "a", "answer": 1}, ""], "train.jsonl:2: empty line"),
    ([], "train.jsonl: no prompts"),
])
def test_bad_prompt_lines_are_refused(tmp_path, registry, lines, fragment):
    from nemotron.stages.imports import import_data

    prompts(tmp_path / "rl" / "train.jsonl", lines)
    with pytest.raises(DataError) as err:
        import_data("nano3", "rl", tmp_path / "rl", root=registry)
    assert fragment in str(err.value)
    assert logged(registry) == []


def test_rl_folder_without_train_and_escaping_links(tmp_path, registry):
    from nemotron.stages.imports import import_data

    prompts(tmp_path / "rl" / "val.jsonl", [{"problem": "a", "answer": 1}])
    with pytest.raises(ConfigError, match="expected train.jsonl .*; found: val.jsonl"):
        import_data("nano3", "rl", tmp_path / "rl", root=registry)
    prompts(tmp_path / "elsewhere.jsonl", [{"problem": "a", "answer": 1}])
    os.symlink(tmp_path / "elsewhere.jsonl", tmp_path / "rl" / "train.jsonl")
    with pytest.raises(ConfigError, match="train.jsonl points outside the imported directory"):
        import_data("nano3", "rl", tmp_path / "rl", root=registry)
    assert logged(registry) == []
