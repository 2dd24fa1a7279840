"""Megatron-Core hybrid checkpoint -> Hugging Face NemotronH: the converted model computes the
same logits, routes every token to the same experts with the same weights, and a Hugging Face
``nemotron_h`` directory imports with its architecture recorded as our model config.

Megatron runs in a subprocess (it needs its own process group): it builds model=nano3_tiny
(and a variant with tied embeddings, no expert bias and top-1 routing) with every weight
randomised, the Mamba parameters (A_log, D, dt_bias) and the expert bias moved far from their
initial values, saves each as a real checkpoint, reloads it, writes the logits and the MoE
routers' inputs and decisions, and exports it. This process loads each export with
``transformers`` (NemotronH's PyTorch fallback kernels on the CPU) and compares.
"""

import copy
import json

import numpy as np
import pytest
import torch
import yaml

from helpers import REPO, run_cli, run_python
from nemotron.kit.model_formats import incompatibilities
from nemotron.schemas.model import architecture_of, model_config
from nemotron.train.hf_nemotron_h import architecture_from_hf

pytestmark = pytest.mark.slow

TINY = yaml.safe_load((REPO / "conf" / "model" / "nano3_tiny.yaml").read_text())
CASES = {
    # 1000 tokens: Megatron pads the vocabulary to 1024 rows, the export has 1000.
    "nano3_tiny": (TINY, 1000),
    # lm_head copied from the embedding, zero e_score_correction_bias, no top-k normalisation.
    "tied_top1": ({**TINY, "untie_embeddings_and_output_weights": False, "moe_router_enable_expert_bias": False,
                   "moe_router_topk": 1}, 2048),
}
TOLERANCE = 1e-4  # fp32; measured max |difference| about 5e-6
TOKENS = (2, 40)

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
torch.manual_seed(5)
for name, (arch, vocab) in cases.items():
    model = build_model(arch, vocab, 1, cuda=False, bf16=False)
    with torch.no_grad():
        for key, param in model.named_parameters():
            if key.endswith(".A_log"):
                param.uniform_(-1.0, 3.0)        # A = -exp(A_log) from -0.4 to -20
            elif key.endswith(".D"):
                param.uniform_(-1.0, 2.0)        # init: ones
            elif key.endswith(".dt_bias"):
                param.uniform_(-12.0, 1.0)       # some heads' dt far below 0.001
            elif key.endswith("conv1d.bias"):
                param.normal_(0.0, 0.3)
            elif param.dim() == 1:
                param.uniform_(0.5, 1.5)         # norm weights: a swapped norm would show
            else:
                param.normal_(0.0, 0.15)
        for key, buffer in model.named_buffers():
            if key.endswith("expert_bias"):
                buffer.normal_(0.0, 0.3)         # init: zeros; big enough to change the selection
    state = checkpoint.TrainerState(step=3, consumed_samples=0, tokens_seen=0, tp_size=1, world_size=1, architecture=arch)
    path = checkpoint.save(root / name, state, [model], None, distributed.rng_state(), 0)
    loaded = load_megatron(path, arch, vocab)
    routers = {}
    for n, symbol in enumerate(arch["hybrid_override_pattern"]):
        if symbol == "E":
            def record(module, args, output, n=n):
                s, b, h = args[0].shape  # Megatron's activations are [sequence, batch, hidden]
                probs, chosen = output
                routers[f"input{n}"] = args[0].transpose(0, 1).reshape(b * s, h).numpy()
                routers[f"probs{n}"] = probs.reshape(s, b, -1).transpose(0, 1).reshape(b * s, -1).numpy()
                routers[f"chosen{n}"] = chosen.reshape(s, b, -1).transpose(0, 1).reshape(b * s, -1).numpy()
            loaded.decoder.layers[n].mlp.router.register_forward_hook(record)
    b, s = json.loads(sys.argv[3])
    tokens = torch.from_numpy(np.random.default_rng(7).integers(0, vocab, (b, s)))
    with torch.no_grad():
        logits = loaded(tokens, torch.arange(s).expand(b, s), None)
    np.save(root / f"{name}-tokens.npy", tokens.numpy())
    np.save(root / f"{name}-logits.npy", logits.float().numpy())
    np.savez(root / f"{name}-routers.npz", **routers)
    export(path, arch, vocab, root / f"{name}-hf", {"bos": None, "eos": 0, "pad": 1})
    print(name, tuple(logits.shape))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_export_hybrid")
    done = run_python(SCRIPT, str(root), json.dumps(CASES), json.dumps(TOKENS), timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def load_hf(exported, case):
    from transformers import AutoModelForCausalLM

    model, info = AutoModelForCausalLM.from_pretrained(exported / f"{case}-hf", local_files_only=True,
                                                       dtype=torch.float32, output_loading_info=True)
    assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    return model.eval()


def hf_logits(model, exported, case) -> np.ndarray:
    tokens = torch.from_numpy(np.load(exported / f"{case}-tokens.npy"))
    with torch.no_grad():
        return model(input_ids=tokens).logits.numpy()


def megatron_logits(exported, case) -> np.ndarray:
    return np.load(exported / f"{case}-logits.npy")[..., :CASES[case][1]]


@pytest.fixture(scope="module")
def nano3_tiny(exported):
    return load_hf(exported, "nano3_tiny")


@pytest.mark.parametrize("case", list(CASES))
def test_hf_logits_equal_megatron_logits(exported, case):
    arch, vocab = CASES[case]
    config = json.loads((exported / f"{case}-hf" / "config.json").read_text())
    assert config["architectures"] == ["NemotronHForCausalLM"] and config["model_type"] == "nemotron_h"
    assert config["hybrid_override_pattern"] == arch["hybrid_override_pattern"] and config["vocab_size"] == vocab
    assert (config["mamba_num_heads"], config["n_groups"], config["num_key_value_heads"]) == (8, 2, 2)
    assert config["norm_topk_prob"] is (arch["moe_router_topk"] > 1) and config["tie_word_embeddings"] is False
    assert (np.load(exported / f"{case}-logits.npy").shape[-1]) == -(-vocab // 128) * 128  # Megatron's padded rows

    model = load_hf(exported, case)
    assert model.model.layers[0].block_type == "linear_attention" and model.get_input_embeddings().weight.shape[0] == vocab
    hf, megatron = hf_logits(model, exported, case), megatron_logits(exported, case)
    assert hf.shape == (*TOKENS, vocab)
    assert megatron.std() > 0.5  # logits far from uniform: a wrong mapping could not pass
    difference = float(np.abs(hf - megatron).max())
    print(f"{case}: max |logit difference| = {difference:.2e}")
    assert difference < TOLERANCE


def _swap_rows(tensor, a: slice, b: slice):
    tensor[a], tensor[b] = tensor[b].clone(), tensor[a].clone()


def _swap_kv(attention):
    key = attention.k_proj.weight.clone()
    attention.k_proj.weight.copy_(attention.v_proj.weight)
    attention.v_proj.weight.copy_(key)


# Mapping mistakes, applied to the loaded Hugging Face model (transformers 5 names): each one
# must move the logits far beyond the tolerance, or the comparison above would not catch it.
# nano3_tiny's mixer: d_inner 128, in_proj rows [z 0:128 | x 128:256 | B 256:288 | C 288:320 | dt 320:328].
MISTAKES = {
    "in_proj z and x swapped": lambda m: _swap_rows(m.model.layers[0].mixer.in_proj.weight, slice(0, 128), slice(128, 256)),
    "in_proj B and C swapped": lambda m: _swap_rows(m.model.layers[2].mixer.in_proj.weight, slice(256, 288), slice(288, 320)),
    "A_log left at its init": lambda m: m.model.layers[0].mixer.A_log.copy_(torch.log(torch.arange(1.0, 9.0))),
    "D left at its init": lambda m: m.model.layers[0].mixer.D.fill_(1.0),
    "dt_bias left at its init": lambda m: m.model.layers[0].mixer.dt_bias.fill_(1.0),
    "conv1d bias dropped": lambda m: m.model.layers[2].mixer.conv1d.bias.zero_(),
    "gated norm weight dropped": lambda m: m.model.layers[2].mixer.norm.weight.fill_(1.0),
    "dt clamped at 0.001 (transformers' usual time_step_min)": lambda m: [
        setattr(m.model.layers[n].mixer, "time_step_limit", (1e-3, float("inf"))) for n in (0, 2)],
    "key and value heads swapped": lambda m: _swap_kv(m.model.layers[3].mixer),
    "expert bias dropped": lambda m: m.model.layers[1].mixer.gate.e_score_correction_bias.zero_(),
    "experts in reverse order": lambda m: [p.copy_(p.flip(0)) for p in (m.model.layers[4].mixer.experts.up_proj,
                                                                         m.model.layers[4].mixer.experts.down_proj)],
    "shared expert dropped": lambda m: m.model.layers[4].mixer.shared_experts.down_proj.weight.zero_(),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_wrong_mapping_changes_the_logits(exported, nano3_tiny, mistake):
    wrong = copy.deepcopy(nano3_tiny)
    with torch.no_grad():
        MISTAKES[mistake](wrong)
    difference = float(np.abs(hf_logits(wrong, exported, "nano3_tiny") - megatron_logits(exported, "nano3_tiny")).max())
    print(f"{mistake}: max |logit difference| = {difference:.2e}")
    assert difference > 100 * TOLERANCE


def test_expert_bias_picks_the_experts_but_does_not_weight_them(exported, nano3_tiny):
    """Both routers: top-k of sigmoid(logits) + expert bias, weighted by the unbiased sigmoid
    scores normalised over the picked experts, times the scaling factor (2.5)."""
    routers = np.load(exported / "nano3_tiny-routers.npz")
    decisions = {}
    hooks = [nano3_tiny.model.layers[n].mixer.gate.register_forward_hook(
        lambda module, args, output, n=n: decisions.__setitem__(n, output)) for n in (1, 4)]
    hf_logits(nano3_tiny, exported, "nano3_tiny")
    for hook in hooks:
        hook.remove()
    changed = 0
    for n in (1, 4):
        gate = nano3_tiny.model.layers[n].mixer.gate
        x = torch.from_numpy(routers[f"input{n}"])
        scores = torch.sigmoid(x @ gate.weight.T)
        bias = gate.e_score_correction_bias
        assert bias.abs().max() > 0.1
        picked = torch.topk(scores + bias, 2, dim=-1).indices
        unbiased = torch.topk(scores, 2, dim=-1).indices
        weights = scores.gather(1, picked)
        weights = 2.5 * weights / weights.sum(-1, keepdim=True)
        expected = torch.zeros_like(scores).scatter(1, picked, weights)
        megatron_probs, megatron_chosen = torch.from_numpy(routers[f"probs{n}"]), torch.from_numpy(routers[f"chosen{n}"])
        assert torch.equal(megatron_chosen, expected > 0)
        torch.testing.assert_close(megatron_probs, expected, atol=1e-5, rtol=1e-5)
        _, hf_weights, hf_picked = decisions[n]
        hf_probs = torch.zeros_like(scores).scatter(1, hf_picked, hf_weights)
        torch.testing.assert_close(hf_probs, expected, atol=1e-5, rtol=1e-5)
        # The bias matters here (it changes the choice of some tokens), and weighting by the
        # biased scores would give other weights.
        changed += int((torch.sort(picked).values != torch.sort(unbiased).values).any(-1).sum())
        biased = (scores + bias).gather(1, picked)
        assert (2.5 * biased / biased.sum(-1, keepdim=True) - weights).abs().max() > 1e-2
    print(f"the expert bias changed the experts of {changed} of {2 * TOKENS[0] * TOKENS[1]} token-layers")
    assert changed >= 5, changed


def test_hybrid_models_that_nemotron_h_cannot_compute_are_named():
    assert incompatibilities(TINY) == []
    assert incompatibilities({**TINY, "position_embedding_type": "rope", "moe_router_score_function": "softmax",
                              "moe_shared_expert_intermediate_size": None}) == [
        "position_embedding_type='rope' (NemotronH: 'none')",
        "moe_router_score_function='softmax' (NemotronH: 'sigmoid')",
        "no shared expert (NemotronH's MoE layers always have one)"]
    assert incompatibilities({**TINY, "activation": "swiglu", "layernorm_epsilon": 1e-6})[0] == (
        "activation='swiglu' (NemotronH: squared_relu)")
    assert "the Mamba mixer's own" in incompatibilities({**TINY, "layernorm_epsilon": 1e-6})[0]
    assert "GPU-only" in incompatibilities({**TINY, "requires_gpu": True})[0]
    # Without MoE layers the router settings do not matter.
    assert incompatibilities({**TINY, "hybrid_override_pattern": "MM*M-M", "moe_router_score_function": None}) == []
    nano3 = yaml.safe_load((REPO / "conf" / "model" / "nano3.yaml").read_text())
    assert [p.split(" (")[0] for p in incompatibilities(nano3)] == ["it is a GPU-only architecture"]


def test_config_maps_back_to_our_model_config(exported):
    config = json.loads((exported / "nano3_tiny-hf" / "config.json").read_text())
    architecture = architecture_from_hf(config, "nano3_tiny-hf")
    assert architecture_of(architecture) == architecture_of(TINY)
    model = model_config(architecture)
    assert (model.seq_length, model.kv_channels, model.moe_router_topk_scaling_factor) == (128, 16, 2.5)
    # transformers writes only the settings that differ from its defaults; those come back too.
    saved = {k: v for k, v in config.items() if k not in ("ssm_state_size", "n_groups", "layers_block_type")}
    fallback = architecture_from_hf({**saved, "layers_block_type": ["mamba", "moe", "mamba", "attention", "moe", "mlp"]}, "x")
    assert (fallback["hybrid_override_pattern"], fallback["mamba_state_dim"], fallback["mamba_num_groups"]) == ("MEM*E-", 128, 8)
    with pytest.raises(ValueError, match="norm_topk_prob=False with 2 experts"):
        architecture_from_hf({**config, "norm_topk_prob": False}, "x")


def test_exported_directory_imports_as_a_hybrid_model(exported, tmp_path):
    out = exported / "nano3_tiny-hf"
    done = run_cli("nano3", "model", "import", "pretrain", str(out), "--step", "3", "--name", "tiny-hybrid-hf",
                   "--root", str(tmp_path / "artifacts"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "artifacts" / "tiny-hybrid-hf" / "versions" / "v1.json").read_text())
    assert (record["fields"]["format"], record["fields"]["step"]) == ("hf", 3)
    metadata = record["metadata"]
    assert metadata["hf_architecture"] == "NemotronHForCausalLM" and metadata["architecture"]["architecture"] == "hybrid"
    assert architecture_of(metadata["architecture"]) == architecture_of(TINY)
    assert "NemotronH" in metadata["architecture_source"]
