"""``nemotron <family> model export hf``: trained tiny models -> Hugging Face directories.

The module's models are trained through the CLI once (4 pretrain steps, 2 SFT steps); each
export runs the conversion in its own process, as a user's would.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import REPO, run_cli, run_python

pytestmark = pytest.mark.slow
TINY_TOKENIZER = REPO / "nemotron" / "data" / "tokenizers" / "tiny-bpe"
TEXT = 'def add(a, b):\n    """Return the sum of a and b."""\n    return a + b\n\nFour score and seven years ago'


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Pretrain data, a 4-step pretrained model, SFT data and a 2-step SFT model."""
    work = tmp_path_factory.mktemp("export")
    for args in (["data", "prep", "pretrain"], ["pretrain", "train.steps=4", "train.checkpoint_interval=0"],
                 ["data", "prep", "sft"],
                 ["sft", "train.steps=2", "train.checkpoint_interval=0", "train.eval_interval=0"]):
        done = run_cli("nano3", *args, cwd=work, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    return work


def record(work: Path, name: str, version: int) -> dict:
    return json.loads((work / "artifacts" / name / "versions" / f"v{version}.json").read_text())


def registry_state(work: Path) -> list[str]:
    return sorted(str(p.relative_to(work / "artifacts")) for p in (work / "artifacts").rglob("v*.json"))


def log_variant(work: Path, tmp_path: Path, name: str, *, drop: str | None = None, **changes) -> None:
    """Log a copy of the pretrained model's checkpoint under ``name``, altered by ``changes``."""
    from nemo_runspec.artifacts import log_artifact, setup_artifact_tracking
    from nemotron.kit import ModelArtifact

    tracking = setup_artifact_tracking({"root": str(work / "artifacts")})
    source = tracking.resolve("nano3-pretrain-model-tiny:v1")
    copy = tmp_path / name
    shutil.copytree(source.path, copy)
    if drop:
        (copy / drop).unlink()
    fields = {"stage": "pretrain", "step": 4, "training_data": source.fields["training_data"],
              "metadata": source.metadata, **changes}
    log_artifact(ModelArtifact(path=copy, **fields), tracking, name=name)


def megatron_logits(checkpoint: str, architecture: dict, vocab_size: int, tokens: list[int], out: Path) -> np.ndarray:
    """The Megatron model's logits on ``tokens``, computed in its own process."""
    done = run_python(f"""
import os, random, json
os.environ.update(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(random.randint(20000, 40000)))
import numpy as np, torch
from pathlib import Path
from nemotron.train import checkpoint, distributed
from nemotron.train.models import build_model
distributed.initialize(1, 1234, cuda=False)
model = build_model(json.loads({json.dumps(architecture)!r}), {vocab_size}, 1, cuda=False, bf16=False)
checkpoint.load_model(Path({checkpoint!r}), model)
model.eval()
tokens = torch.tensor([{tokens!r}])
n = tokens.shape[1]
with torch.no_grad():
    logits = model(tokens, torch.arange(n)[None], torch.triu(torch.ones(n, n, dtype=torch.bool), 1)[None, None])
np.save({str(out)!r}, logits.numpy())
""", timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(out)


def test_pretrained_model_exports_to_transformers_with_equal_logits_and_lineage(work, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "hf"
    done = run_cli("nano3", "model", "export", "hf", "nano3-pretrain-model-tiny:latest", str(out), cwd=work, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "logged nano3-pretrain-model-tiny-hf:v1" in done.stdout
    source, exported = record(work, "nano3-pretrain-model-tiny", 1), record(work, "nano3-pretrain-model-tiny-hf", 1)
    fields = exported["fields"]
    assert exported["type"] == "ModelArtifact" and Path(exported["path"]) == out
    assert (fields["format"], fields["stage"], fields["step"]) == ("hf", "pretrain", 4)
    assert fields["parent_model"] == "art://nano3-pretrain-model-tiny:v1" and exported["inputs"] == [fields["parent_model"]]
    assert exported["metadata"]["tokenizer_sha256"] == source["metadata"]["tokenizer_sha256"]
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {p.name for p in out.iterdir()}
    assert not list(tmp_path.glob(".hf.export-*"))
    assert (out / "tokenizer.json").read_bytes() == (TINY_TOKENIZER / "tokenizer.json").read_bytes()
    shipped_template = json.loads((TINY_TOKENIZER / "tokenizer_config.json").read_text())["chat_template"]
    assert json.loads((out / "tokenizer_config.json").read_text())["chat_template"] == shipped_template

    lineage = run_cli("artifact", "lineage", "nano3-pretrain-model-tiny-hf:v1", "--format", "json", cwd=work)
    assert lineage.returncode == 0 and "art://nano3-pretrain-data-tiny:v1" in lineage.stdout, lineage.stderr

    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    model.eval()
    tokens = tokenizer(TEXT)["input_ids"]
    assert 10 < len(tokens) <= 128 and tokenizer.eos_token == "<|endoftext|>"
    with torch.no_grad():
        hf = model(input_ids=torch.tensor([tokens])).logits.numpy()
    arch, vocab = source["metadata"]["architecture"], source["metadata"]["vocab_size"]
    megatron = megatron_logits(source["path"], arch, vocab, tokens, tmp_path / "logits.npy")
    assert hf.shape == (1, len(tokens), vocab) and model.config.num_key_value_heads == arch["num_query_groups"] == 2
    difference = float(np.abs(hf - megatron[..., :vocab]).max())
    print(f"max |logit difference| = {difference:.2e}")
    assert difference < 1e-4


def test_sft_model_exports_with_the_chat_template_it_was_trained_on(work, tmp_path):
    from transformers import AutoTokenizer

    from nemotron.data.chat import load_template

    out = tmp_path / "chat"
    done = run_cli("nano3", "model", "export", "hf", "nano3-sft-model-tiny", str(out), "--name", "tiny-chat",
                   cwd=work, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    exported = record(work, "tiny-chat", 1)
    assert exported["fields"]["stage"] == "sft" and exported["fields"]["format"] == "hf"
    assert exported["fields"]["parent_model"] == "art://nano3-sft-model-tiny:v1"
    chatml = load_template("chatml", TINY_TOKENIZER)
    assert exported["metadata"]["chat_template"]["sha256"] == chatml.sha256
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    messages = [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "5"}]
    assert tokenizer.apply_chat_template(messages, tokenize=False) == chatml.render(messages, None, False)
    generation = json.loads((out / "generation_config.json").read_text())
    stops = [tokenizer.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>")]
    assert generation["eos_token_id"] == stops  # a chat model stops at the end of its turn too


def test_tokenizer_option_for_a_source_that_records_none(work, tmp_path):
    log_variant(work, tmp_path, "bare-model", training_data=None,
                metadata={k: v for k, v in record(work, "nano3-pretrain-model-tiny", 1)["metadata"].items()
                          if k in ("architecture", "vocab_size")})
    out = tmp_path / "out"
    refused = run_cli("nano3", "model", "export", "hf", "bare-model:v1", str(out), cwd=work)
    assert refused.returncode == 1 and "does not record the tokenizer it was trained with" in refused.stderr
    assert "--tokenizer PATH" in refused.stderr and not out.exists()

    out.mkdir()  # an empty directory is used
    done = run_cli("nano3", "model", "export", "hf", "bare-model:v1", str(out), "--tokenizer", str(TINY_TOKENIZER),
                   cwd=work, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert record(work, "bare-model-hf", 1)["fields"]["parent_model"] == "art://bare-model:v1"
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()


def test_export_help_imports_no_heavy_library(work):
    probe = run_python("""
import sys
sys.argv = ["nemotron", "nano3", "model", "export", "--help"]
from nemotron.cli.app import main
try:
    main()
except SystemExit:
    pass
print(sorted({m.split('.')[0] for m in sys.modules} & {"torch", "megatron", "transformers", "safetensors"}), file=sys.stderr)
""", cwd=work)
    assert "NAME[:VER]" in probe.stdout and "--tokenizer" in probe.stdout and "[]" in probe.stderr


@pytest.mark.parametrize("case,fragment", [
    ("data", "nano3-pretrain-data-tiny:v1 is a PretrainBlendsArtifact, not a ModelArtifact"),
    ("missing", "no artifact named 'nope'"),
    ("format", "unknown export format 'gguf'"),
    ("hf", "fake-hf:v1 is already a 'hf' checkpoint, not a Megatron one"),
    ("incomplete", "is incomplete (missing trainer.json)"),
    ("incomplete-model", "is incomplete (missing model/metadata.json)"),
    ("gpu-only", "cannot be a NemotronHForCausalLM: it is a GPU-only architecture"),
    ("tokenizer", "is not the one bad-tokenizer:v1 was trained with"),
    ("not-empty", "exists and is not empty; refusing to overwrite it"),
])
def test_bad_input_is_refused_in_one_line_and_nothing_is_logged(work, tmp_path, case, fragment):
    source, fmt, extra = f"bad-{case}:v1", "hf", []
    out = tmp_path / "out"
    if case == "data":
        source = "nano3-pretrain-data-tiny:latest"
    elif case == "missing":
        source = "nope:v1"
    elif case == "format":
        fmt, source = "gguf", "nano3-pretrain-model-tiny:latest"
    elif case == "hf":
        (tmp_path / "fake").mkdir()
        from nemo_runspec.artifacts import log_artifact, setup_artifact_tracking
        from nemotron.kit import ModelArtifact

        log_artifact(ModelArtifact(path=tmp_path / "fake", stage="pretrain", step=4, format="hf"),
                     setup_artifact_tracking({"root": str(work / "artifacts")}), name="fake-hf")
        source = "fake-hf:v1"
    elif case == "incomplete":
        log_variant(work, tmp_path, f"bad-{case}", drop="trainer.json")
    elif case == "incomplete-model":
        log_variant(work, tmp_path, f"bad-{case}", drop="model/metadata.json")
    elif case == "gpu-only":
        meta = record(work, "nano3-pretrain-model-tiny", 1)["metadata"]
        log_variant(work, tmp_path, f"bad-{case}", metadata={**meta, "architecture": {
            "name": "nano3", "architecture": "hybrid", "requires_gpu": True, "gpu_only_reason": "Mamba kernels"}})
    elif case == "tokenizer":
        log_variant(work, tmp_path, f"bad-{case}")
        other = tmp_path / "other-tokenizer"
        other.mkdir()
        (other / "tokenizer.json").write_text(json.dumps(json.loads((TINY_TOKENIZER / "tokenizer.json").read_text())))
        extra = ["--tokenizer", str(other)]
    elif case == "not-empty":
        source = "nano3-pretrain-model-tiny:latest"
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    before = registry_state(work)

    done = run_cli("nano3", "model", "export", fmt, source, str(out), *extra, cwd=work)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and lines[-2].startswith("error: ") and fragment in lines[-2], done.stderr[-2000:]
    assert registry_state(work) == before
    assert [p.name for p in out.iterdir()] == ["keep.txt"] if case == "not-empty" else not out.exists()
    assert not list(tmp_path.glob(".out.export-*"))
