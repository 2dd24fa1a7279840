"""``nemotron <family> model import`` / ``data import``: outputs of the pipeline (and hand-built
inputs) logged as artifacts that the training stages take as run.model / run.data."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import REPO, run_cli, run_python

pytestmark = pytest.mark.slow
TOKENIZER = str(REPO / "nemotron" / "data" / "tokenizers" / "tiny-bpe")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Pretrain data, a 2-step pretrained model, SFT data and RL data, made by the CLI."""
    work = tmp_path_factory.mktemp("import")
    for args in (["data", "prep", "pretrain"], ["pretrain", "train.steps=2", "train.checkpoint_interval=0"],
                 ["data", "prep", "sft"], ["data", "prep", "rl"]):
        done = run_cli("nano3", *args, cwd=work, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    return work


def record(work: Path, name: str, version: int = 1) -> dict:
    return json.loads((work / "artifacts" / name / "versions" / f"v{version}.json").read_text())


def registry_state(work: Path) -> list[str]:
    return sorted(str(p.relative_to(work / "artifacts")) for p in (work / "artifacts").rglob("v*.json"))


def imported(work: Path, *args: str) -> None:
    done = run_cli("nano3", *args, cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "logged " in done.stdout, done.stdout


def dry_run(work: Path, stage: str, *overrides: str) -> str:
    done = run_cli("nano3", stage, "--dry-run", *overrides, cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_imported_checkpoint_and_sft_data_train_an_sft_model(work):
    pretrained = record(work, "nano3-pretrain-model-tiny")
    checkpoints = Path(pretrained["path"]).parent
    dist_metadata = (Path(pretrained["path"]) / "model" / "metadata.json").read_bytes()
    imported(work, "model", "import", "pretrain", str(checkpoints), "--tokenizer", TOKENIZER)
    model = record(work, "nano3-pretrain-model-imported")
    assert model["type"] == "ModelArtifact"
    assert (model["fields"]["stage"], model["fields"]["format"], model["fields"]["step"]) == ("pretrain", "megatron", 2)
    meta = model["metadata"]
    assert meta["imported_from"] == str(checkpoints) and meta["source_checkpoint"] == pretrained["path"]
    from nemotron.schemas.model import architecture_of

    # trainer.json holds the fields a checkpoint must match (unset hybrid/MoE ones as None)
    assert meta["architecture"] == architecture_of(pretrained["metadata"]["architecture"])
    assert (meta["vocab_size"], meta["tokenizer_sha256"]) == (2048, pretrained["metadata"]["tokenizer_sha256"])
    assert (Path(model["path"]) / "model" / "metadata.json").read_bytes() == dist_metadata  # never overwritten

    data = record(work, "nano3-sft-data-tiny")
    imported(work, "data", "import", "sft", data["path"])  # with the tokenizer its metadata.json records
    sft_data = record(work, "nano3-sft-data-imported")
    for key in ("pack_size", "num_packs", "num_sequences", "packing_efficiency", "tokenizer"):
        assert sft_data["fields"][key] == data["fields"][key], key
    assert {s: (v["num_packs"], v["num_sequences"]) for s, v in sft_data["fields"]["splits"].items()} == \
        {s: (v["num_packs"], v["num_sequences"]) for s, v in data["fields"]["splits"].items()}
    assert sft_data["fields"]["chat_template"]["name"] == "imported"

    refs = ["run.model=nano3-pretrain-model-imported:latest", "run.data=nano3-sft-data-imported:latest"]
    config = dry_run(work, "sft", *refs)
    assert f"checkpoint: {model['path']}" in config and "seq_length: 128" in config
    done = run_cli("nano3", "sft", *refs, "train.steps=1", "train.checkpoint_interval=0", "train.eval_interval=0",
                   "run.name=from-imports", cwd=work, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert record(work, "from-imports")["inputs"] == ["art://nano3-pretrain-model-imported:v1",
                                                      "art://nano3-sft-data-imported:v1"]


def test_the_recorded_tokenizer_is_used_while_it_is_the_file_recorded(tmp_path):
    from nemo_runspec.errors import ConfigError
    from nemotron.data.files import file_sha256
    from nemotron.stages.imports.options import require_tokenizer

    tokenizer = tmp_path / "tok" / "tokenizer.json"
    tokenizer.parent.mkdir()
    shutil.copyfile(Path(TOKENIZER) / "tokenizer.json", tokenizer)
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(ConfigError, match="importing sft data needs the tokenizer its token ids come from"):
        require_tokenizer(None, "sft", recorded_in=data)  # no metadata.json: nothing recorded
    recorded = {"path": str(tokenizer), "sha256": file_sha256(tokenizer), "vocab_size": 2048, "name": "mine"}
    (data / "metadata.json").write_text(json.dumps({"fields": {"tokenizer": recorded}}))
    loaded = require_tokenizer(None, "sft", recorded_in=data)
    assert (loaded.info.path, loaded.info.sha256, loaded.info.name) == (str(tokenizer), recorded["sha256"], "mine")
    tokenizer.write_text(tokenizer.read_text() + " ")
    with pytest.raises(ConfigError, match=f"{data / 'metadata.json'} records the tokenizer {tokenizer}, whose sha256 now differs"):
        require_tokenizer(None, "sft", recorded_in=data)
    tokenizer.unlink()
    with pytest.raises(ConfigError, match=f"records the tokenizer {tokenizer}, which is missing") as err:
        require_tokenizer(None, "sft", recorded_in=data)
    assert "--tokenizer" in err.value.hint


def test_megatron_lm_checkpoint_directory_gives_its_step(work, tmp_path):
    source = Path(record(work, "nano3-pretrain-model-tiny")["path"]) / "model"
    shutil.copytree(source, tmp_path / "mlm" / "iter_0000050")
    (tmp_path / "mlm" / "latest_checkpointed_iteration.txt").write_text("50\n")
    imported(work, "model", "import", "pretrain", str(tmp_path / "mlm"), "--name", "mlm")
    model = record(work, "mlm")
    assert model["fields"]["step"] == 50 and model["metadata"]["step_source"] == "latest_checkpointed_iteration.txt"
    assert (Path(model["path"]) / "model" / "metadata.json").is_file()
    assert f"checkpoint: {model['path']}" in dry_run(work, "sft", "run.model=mlm:latest")

    imported(work, "model", "import", "sft", str(tmp_path / "mlm" / "iter_0000050"), "--name", "mlm-iter", "--step", "60")
    fields = record(work, "mlm-iter")["fields"]
    assert (fields["stage"], fields["step"]) == ("sft", 60)


MEGATRON_LM_ARGS = """
import argparse, sys, torch
from megatron.core.transformer.enums import AttnBackend
args = argparse.Namespace(num_layers=2, hidden_size=64, ffn_hidden_size=176, num_attention_heads=4,
                          group_query_attention=True, num_query_groups=2, kv_channels=None, seq_length=128,
                          max_position_embeddings=128, position_embedding_type="rope", rotary_base=10000,
                          normalization="RMSNorm", swiglu=True, add_bias_linear=False,
                          untie_embeddings_and_output_weights=True, make_vocab_size_divisible_by=128,
                          tensor_model_parallel_size=1, params_dtype=torch.float32, attention_backend=AttnBackend.auto,
                          num_experts=None, hybrid_override_pattern=None)
torch.save({"args": args, "iteration": 70, "checkpoint_version": 3.0}, sys.argv[1])
"""


def megatron_lm_checkpoint(work: Path, target: Path) -> Path:
    """Our tiny model's shards with the common.pt Megatron-LM writes: its arguments, the iteration."""
    shutil.copytree(Path(record(work, "nano3-pretrain-model-tiny")["path"]) / "model", target)
    (target / "common.pt").unlink()
    done = run_python(MEGATRON_LM_ARGS, str(target / "common.pt"), cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    return target


def test_megatron_lm_arguments_give_the_architecture_so_sft_checks_it_and_export_works(work, tmp_path):
    checkpoint = megatron_lm_checkpoint(work, tmp_path / "mlm" / "release")
    (tmp_path / "mlm" / "latest_checkpointed_iteration.txt").write_text("release\n")
    imported(work, "model", "import", "pretrain", str(tmp_path / "mlm"), "--name", "mlm-args", "--tokenizer", TOKENIZER)
    model = record(work, "mlm-args")
    assert model["fields"]["step"] == 70 and model["metadata"]["step_source"] == "common.pt iteration"
    architecture, tiny = model["metadata"]["architecture"], record(work, "nano3-pretrain-model-tiny")["metadata"]["architecture"]
    assert model["metadata"]["architecture_source"].startswith("common.pt")
    for key in ("num_layers", "hidden_size", "ffn_hidden_size", "num_attention_heads", "num_query_groups", "seq_length",
                "position_embedding_type", "normalization", "activation", "add_bias_linear",
                "untie_embeddings_and_output_weights"):
        assert architecture[key] == tiny[key], key
    assert architecture["kv_channels"] == 16 and architecture["make_vocab_size_divisible_by"] == 128

    wrong = run_cli("nano3", "sft", "run.model=mlm-args:latest", "model.num_layers=3", "train.steps=1", cwd=work)
    assert wrong.returncode == 1 and "parent mlm-args:v1 differs from the model config: num_layers=2 (config: 3)" in wrong.stderr

    out = tmp_path / "hf"
    done = run_cli("nano3", "model", "export", "hf", "mlm-args:latest", str(out), cwd=work, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "config.json").read_text())["max_position_embeddings"] == 128


def test_a_common_pt_that_needs_code_to_load_is_not_run(work, tmp_path):
    checkpoint = megatron_lm_checkpoint(work, tmp_path / "iter_0000010")
    done = run_python("""
import sys, torch
class Payload:
    def __reduce__(self):
        return (print, ("PAYLOAD RAN",))
torch.save({"args": Payload(), "iteration": 10}, sys.argv[1])
""", str(checkpoint / "common.pt"), cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    done = run_cli("nano3", "model", "import", "pretrain", str(checkpoint), "--name", "mlm-unsafe", cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "PAYLOAD RAN" not in done.stdout + done.stderr
    assert "not readable with weights_only=True" in done.stderr and "architecture and iteration are not recorded" in done.stderr
    model = record(work, "mlm-unsafe")
    assert model["fields"]["step"] == 10 and "architecture" not in model["metadata"]


def test_hugging_face_directory(work, tmp_path):
    from safetensors.numpy import save_file

    hf = tmp_path / "hf"
    hf.mkdir()
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 2048}
    (hf / "config.json").write_text(json.dumps(config))
    (hf / "trainer_state.json").write_text(json.dumps({"global_step": 30}))
    save_file({"a": np.zeros(4, np.float32)}, str(hf / "model-00001-of-00002.safetensors"))
    save_file({"b": np.ones(4, np.float32)}, str(hf / "model-00002-of-00002.safetensors"))
    (hf / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    imported(work, "model", "import", "sft", str(hf), "--name", "hf-sft", "--tokenizer", TOKENIZER)
    model = record(work, "hf-sft")
    assert (model["fields"]["format"], model["fields"]["stage"], model["fields"]["step"]) == ("hf", "sft", 30)
    assert model["metadata"]["hf_architecture"] == "LlamaForCausalLM" and model["metadata"]["vocab_size"] == 2048
    assert (Path(model["path"]) / "config.json").is_file()


def test_imported_pretrain_data_is_a_pretraining_input(work):
    data = record(work, "nano3-pretrain-data-tiny")
    imported(work, "data", "import", "pretrain", data["fields"]["blend_path"], "--tokenizer", TOKENIZER)
    blends = record(work, "nano3-pretrain-data-imported")
    assert blends["type"] == "PretrainBlendsArtifact"
    for key in ("total_tokens", "total_sequences", "num_shards", "split_tokens", "split_sequences", "tokenizer"):
        assert blends["fields"][key] == data["fields"][key], key
    blend = lambda fields: json.loads(Path(fields["blend_path"]).read_text())  # noqa: E731
    assert blend(blends["fields"]) == blend(data["fields"])
    assert blends["metadata"]["imported_from"] == data["fields"]["blend_path"]
    config = dry_run(work, "pretrain", "run.data=nano3-pretrain-data-imported:latest")
    assert f"blend_path: {blends['path']}/blend.json" in config and "vocab_size: 2048" in config


def test_imported_rl_data_is_an_rl_input(work):
    data = record(work, "nano3-rl-data-tiny")
    imported(work, "data", "import", "rl", data["path"])
    splits = record(work, "nano3-rl-data-imported")
    assert splits["type"] == "SplitJsonlDataArtifact"
    for key in ("train_count", "val_count", "test_count", "record_schema"):
        assert splits["fields"][key] == data["fields"][key], key
    assert Path(splits["fields"]["manifest_path"]).is_file()
    assert f"train_path: {splits['path']}/train.jsonl" in dry_run(work, "rl", "run.data=nano3-rl-data-imported:latest")


def _checkpoint_copy(work: Path, tmp_path: Path) -> Path:
    target = tmp_path / "ckpt"
    shutil.copytree(Path(record(work, "nano3-pretrain-model-tiny")["path"]), target)
    return target


def _blend_with(work: Path, tmp_path: Path, damage) -> Path:
    blend = json.loads(Path(record(work, "nano3-pretrain-data-tiny")["fields"]["blend_path"]).read_text())
    prefix = blend["train"][1]
    copy = tmp_path / "shard"
    for suffix in (".bin", ".idx"):
        shutil.copyfile(prefix + suffix, str(copy) + suffix)
    damage(copy)
    blend["train"][1] = str(copy)
    (tmp_path / "blend.json").write_text(json.dumps(blend))
    return tmp_path / "blend.json"


def _parquet_without_loss_mask(work: Path, tmp_path: Path) -> Path:
    import pyarrow.parquet as pq

    train = Path(record(work, "nano3-sft-data-tiny")["path"]) / "train"
    (tmp_path / "sft" / "train").mkdir(parents=True)
    table = pq.read_table(next(train.glob("*.parquet"))).drop_columns(["loss_mask"])
    pq.write_table(table, tmp_path / "sft" / "train" / "part-00000.parquet")
    return tmp_path / "sft"


def _empty(tmp_path: Path) -> Path:
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def _wrong_layout(tmp_path: Path) -> Path:
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "a.txt").write_text("a")
    (tmp_path / "odd" / "b.bin").write_bytes(b"b")
    return tmp_path / "odd"


def _escaping_link(work: Path, tmp_path: Path) -> Path:
    checkpoint = _checkpoint_copy(work, tmp_path)
    (checkpoint / "model" / "extra.distcp").symlink_to(tmp_path.parent)
    return checkpoint


def _link_loop(work: Path, tmp_path: Path) -> Path:
    checkpoint = _checkpoint_copy(work, tmp_path)
    (checkpoint / "ranks" / "a.pt").symlink_to(checkpoint / "ranks" / "b.pt")
    (checkpoint / "ranks" / "b.pt").symlink_to(checkpoint / "ranks" / "a.pt")
    return checkpoint


def _bare_dist_checkpoint(work: Path, tmp_path: Path) -> Path:
    shutil.copytree(Path(record(work, "nano3-pretrain-model-tiny")["path"]) / "model", tmp_path / "dist")
    return tmp_path / "dist"


BAD = [
    ("model", "pretrain", lambda w, t: t / "nowhere", [], "does not exist"),
    ("model", "pretrain", lambda w, t: _wrong_layout(t), [],
     "expected a Megatron distributed checkpoint (metadata.json) or a Hugging Face directory (config.json); found: a.txt, b.bin"),
    ("model", "sft", lambda w, t: _empty(t), [], "is empty"),
    ("model", "pretrain", _escaping_link, [], "extra.distcp points outside the imported directory"),
    ("model", "pretrain", _link_loop, [], "cannot be resolved (a symlink loop)"),
    ("model", "pretrain", _bare_dist_checkpoint, [], "the checkpoint records no step"),
    ("data", "sft", _parquet_without_loss_mask, ["--tokenizer", TOKENIZER], "part-00000.parquet: no column 'loss_mask'"),
    ("data", "rl", lambda w, t: _empty(t), [], "is empty"),
    ("data", "pretrain", lambda w, t: _blend_with(w, t, lambda p: Path(f"{p}.bin").unlink()), ["--tokenizer", TOKENIZER],
     "shard.bin: shard file missing"),
    ("data", "pretrain", lambda w, t: _blend_with(w, t, lambda p: Path(f"{p}.idx").write_bytes(b"MMIDIDX\x00\x00junk")),
     ["--tokenizer", TOKENIZER], "shard.idx: not a Megatron index"),
]


@pytest.mark.parametrize("group,stage,build,options,fragment", BAD, ids=[f"{g}-{s}-{f[:30]}" for g, s, _, _, f in BAD])
def test_bad_inputs_are_one_line_errors_and_nothing_is_logged(work, tmp_path, group, stage, build, options, fragment):
    before = registry_state(work)
    path = build(work, tmp_path)
    done = run_cli("nano3", group, "import", stage, str(path), *options, "--name", "must-not-exist", cwd=work)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr[-2000:]
    assert lines[-2].startswith("error: ") and fragment in lines[-2] and lines[-1].startswith("hint: "), done.stderr
    assert registry_state(work) == before and not (work / "artifacts" / "must-not-exist").exists()
