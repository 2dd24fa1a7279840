"""Megatron-Core checkpoint -> Hugging Face Llama: the converted model computes the same logits.

Megatron runs in a subprocess (it needs its own process group): it builds models of several
shapes with every weight randomised (norm weights too, so a swapped norm would show), saves
each as a real checkpoint, reloads it, writes the logits of the reloaded model and exports it.
This process then loads each export with ``transformers`` and compares.
"""

import json

import numpy as np
import pytest
import torch

from helpers import run_python
from nemotron.train.hf_export import convert_state_dict, hf_config, incompatibilities, split_qkv

pytestmark = pytest.mark.slow

BASE = dict(name="t", num_layers=2, hidden_size=64, ffn_hidden_size=176, num_attention_heads=4, num_query_groups=2,
            seq_length=32, position_embedding_type="rope", rotary_base=10000, normalization="RMSNorm",
            activation="swiglu", add_bias_linear=False, untie_embeddings_and_output_weights=True)
CASES = {
    # GQA like model=tiny; 1000 tokens padded to 1024 rows in Megatron, 1000 in the export.
    "gqa": (BASE, 1000),
    # Multi-head attention, tied embeddings, a vocabulary that needs no padding.
    "mha_tied": ({**BASE, "num_query_groups": 4, "untie_embeddings_and_output_weights": False}, 2048),
    # One key/value head, three layers, another RoPE base.
    "mqa": ({**BASE, "num_layers": 3, "num_query_groups": 1, "ffn_hidden_size": 96, "rotary_base": 500000}, 777),
}

SCRIPT = r"""
import json, os, random, sys
os.environ.update(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(random.randint(20000, 40000)))
from pathlib import Path
import numpy as np, torch
from nemotron.train import checkpoint, distributed
from nemotron.train.models import build_model
from nemotron.train.hf_export import export, load_megatron

root, cases = Path(sys.argv[1]), json.loads(sys.argv[2])
distributed.initialize(1, 1234, cuda=False)
for name, (arch, vocab) in cases.items():
    model = build_model(arch, vocab, 1, cuda=False, bf16=False)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 1:
                param.uniform_(0.5, 1.5)
            else:
                param.normal_(0.0, 0.15)
    state = checkpoint.TrainerState(step=3, consumed_samples=0, tokens_seen=0, tp_size=1, world_size=1, architecture=arch)
    path = checkpoint.save(root / name, state, [model], None, distributed.rng_state(), 0)
    loaded = load_megatron(path, arch, vocab)
    tokens = torch.from_numpy(np.random.default_rng(7).integers(0, vocab, (2, 24)))
    positions = torch.arange(24).expand(2, 24)
    causal = torch.triu(torch.ones(24, 24, dtype=torch.bool), diagonal=1).expand(2, 1, 24, 24)
    with torch.no_grad():
        logits = loaded(tokens, positions, causal)
    np.save(root / f"{name}-tokens.npy", tokens.numpy())
    np.save(root / f"{name}-logits.npy", logits.float().numpy())
    export(path, arch, vocab, root / f"{name}-hf", {"bos": None, "eos": 0, "pad": 1})
    print(name, tuple(logits.shape))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_export")
    done = run_python(SCRIPT, str(root), json.dumps(CASES), timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    return root


@pytest.mark.parametrize("case", list(CASES))
def test_hf_logits_equal_megatron_logits(exported, case):
    from transformers import AutoModelForCausalLM

    arch, vocab = CASES[case]
    out = exported / f"{case}-hf"
    assert (out / "model.safetensors").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["vocab_size"] == vocab
    assert config["num_key_value_heads"] == arch["num_query_groups"]
    assert config["tie_word_embeddings"] is (not arch["untie_embeddings_and_output_weights"])
    assert config["rope_parameters"]["rope_theta"] == arch["rotary_base"] and config["rms_norm_eps"] == 1e-5

    model = AutoModelForCausalLM.from_pretrained(out, local_files_only=True, dtype=torch.float32)
    model.eval()
    assert model.config.num_key_value_heads == arch["num_query_groups"]
    assert model.get_input_embeddings().weight.shape[0] == vocab
    tokens = torch.from_numpy(np.load(exported / f"{case}-tokens.npy"))
    megatron = np.load(exported / f"{case}-logits.npy")
    assert megatron.shape[-1] == -(-vocab // 128) * 128  # Megatron's padded vocabulary
    with torch.no_grad():
        hf = model(input_ids=tokens).logits.numpy()
    assert hf.shape == (*tokens.shape, vocab)
    assert megatron[..., :vocab].std() > 0.5  # logits far from uniform: a wrong mapping could not pass
    difference = float(np.abs(hf - megatron[..., :vocab]).max())
    print(f"{case}: max |logit difference| = {difference:.2e}")
    assert difference < 1e-4


def test_qkv_rows_are_split_per_query_group():
    heads, groups, dim, hidden = 6, 2, 3, 5
    # Row label: group * 100 + slot * 10 + row within head; slots 0-2 query heads, 3 key, 4 value.
    labels = torch.tensor([[g * 100 + s * 10 + r] * hidden for g in range(groups) for s in range(5) for r in range(dim)],
                          dtype=torch.float32)
    q, k, v = split_qkv(labels, heads, groups, dim)
    assert q.shape == (heads * dim, hidden) and k.shape == v.shape == (groups * dim, hidden)
    # Hugging Face: query head h reads key/value head h // (heads // groups).
    assert q[:, 0].tolist() == [g * 100 + s * 10 + r for g in range(2) for s in range(3) for r in range(3)]
    assert k[:, 0].tolist() == [g * 100 + 30 + r for g in range(2) for r in range(3)]
    assert v[:, 0].tolist() == [g * 100 + 40 + r for g in range(2) for r in range(3)]
    with pytest.raises(ValueError, match="need 30"):
        split_qkv(labels[:-3], heads, groups, dim)


def test_unknown_or_missing_weights_are_refused():
    arch = {**BASE, "num_layers": 1}
    state = {"embedding.word_embeddings.weight": torch.zeros(128, 64), "decoder.final_layernorm.weight": torch.ones(64),
             "decoder.layers.0.input_layernorm.weight": torch.ones(64),
             "decoder.layers.0.self_attention.linear_qkv.weight": torch.zeros(128, 64),
             "decoder.layers.0.self_attention.linear_proj.weight": torch.zeros(64, 64),
             "decoder.layers.0.pre_mlp_layernorm.weight": torch.ones(64),
             "decoder.layers.0.mlp.linear_fc1.weight": torch.zeros(352, 64),
             "decoder.layers.0.mlp.linear_fc2.weight": torch.zeros(64, 176),
             "decoder.layers.0.mlp.linear_fc2._extra_state": None}
    assert len(convert_state_dict(state, arch, 100)) == 2 + 9  # tied: no lm_head
    with pytest.raises(ValueError, match="without a Llama counterpart: decoder.layers.0.mlp.router.weight"):
        convert_state_dict({**state, "decoder.layers.0.mlp.router.weight": torch.zeros(4, 64)}, arch, 100)
    with pytest.raises(KeyError, match="pre_mlp_layernorm"):
        convert_state_dict({k: v for k, v in state.items() if "pre_mlp" not in k}, arch, 100)
    with pytest.raises(ValueError, match="fewer than the tokenizer's 200 tokens"):
        convert_state_dict(state, arch, 200)


def test_non_llama_architectures_are_named():
    assert incompatibilities(BASE) == []
    assert incompatibilities({**BASE, "activation": "gelu", "add_bias_linear": True}) == [
        "activation='gelu' (Llama: 'swiglu')", "add_bias_linear=True (Llama: False)"]
    assert "GPU-only" in incompatibilities({"requires_gpu": True, "architecture": "hybrid"})[0]
    config = hf_config(BASE, 1000, rms_norm_eps=1e-5, tied=False, token_ids={"eos": 0})
    assert (config["head_dim"], config["max_position_embeddings"], config["eos_token_id"]) == (16, 32, 0)
