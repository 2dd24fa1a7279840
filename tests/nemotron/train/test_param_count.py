"""nemotron.train.param_count against real Megatron-Core models and published Nemotron 3 sizes.

The exact-match tests build the model with Megatron-Core on CPU in a subprocess (Megatron
needs torch.distributed: gloo, world size 1) and compare ``sum(p.numel())`` with the analytic
count. Counts are for the whole model, so tensor parallel size 1 is enough.

Over 400 lines on purpose: the counts are checked against Megatron-Core's built modules for every architecture
kind; the cases share the builders above.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nemotron.train.param_count import (
    BREAKDOWN_KEYS,
    ParameterCount,
    count_parameters,
    format_count,
    padded_vocab_size,
)

REPO = Path(__file__).resolve().parents[3]
MODEL_DIR = REPO / "conf" / "model"
NANO3_VOCAB = 131072  # tokenizer of nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16 (config.json vocab_size)
SUPER3_VOCAB = 131072

# Published sizes (see the comments in conf/model/nano3.yaml and super3.yaml).
NANO3_TOTAL = 31.6e9  # "31.6B total"
NANO3_ACTIVE = 3.6e9  # "3.6B with embeddings"
NANO3_ACTIVE_NO_EMBED = 3.2e9  # "3.2B active"
SUPER3_TOTAL = 120e9  # "120B total" (main model; the MTP block is extra)
SUPER3_ACTIVE = 12e9  # "12B active"


def load(name: str) -> dict:
    return yaml.safe_load((MODEL_DIR / f"{name}.yaml").read_text())


# --------------------------------------------------------------------------------------------
# subprocess builders

_DIST_SETUP = r"""
import json, os, socket, sys, types
import torch

def _init_dist():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1",
                      LOCAL_RANK="0")
    torch.distributed.init_process_group("gloo", rank=0, world_size=1)
    from megatron.core import parallel_state
    parallel_state.initialize_model_parallel(1)
    torch.cuda.current_device = lambda: torch.device("cpu")

COMMON = dict(use_cpu_initialization=True, params_dtype=torch.float32, hidden_dropout=0.0,
              attention_dropout=0.0, bias_activation_fusion=False, masked_softmax_fusion=False,
              persist_layer_norm=False, bias_dropout_fusion=False, apply_rope_fusion=False,
              gradient_accumulation_fusion=False)
MOE_KEYS = ("num_moe_experts", "moe_router_topk", "moe_ffn_hidden_size",
            "moe_shared_expert_intermediate_size", "moe_router_score_function",
            "moe_router_enable_expert_bias")

def moe_kwargs(m):
    kw = {k: m[k] for k in MOE_KEYS if m.get(k) is not None}
    if kw:
        kw["moe_token_dispatcher_type"] = "allgather"  # alltoall wants a CUDA stream
    return kw
"""

GPT_BUILD = (
    _DIST_SETUP
    + r"""
_init_dist()
from megatron.core.models.gpt import GPTModel
from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec, get_gpt_mtp_block_spec
from megatron.core.transformer.transformer_config import TransformerConfig

out = {}
for name, v in json.loads(sys.argv[1]).items():
    m = v["model"]
    gated = m["activation"] == "swiglu"
    kw = dict(COMMON,
        num_layers=m["num_layers"], hidden_size=m["hidden_size"], ffn_hidden_size=m["ffn_hidden_size"],
        num_attention_heads=m["num_attention_heads"], num_query_groups=m.get("num_query_groups"),
        kv_channels=m.get("kv_channels"), normalization=m["normalization"],
        gated_linear_unit=gated,
        activation_func=torch.nn.functional.silu if gated else torch.nn.functional.gelu,
        add_bias_linear=m["add_bias_linear"], qk_layernorm=bool(m.get("qk_layernorm")),
        mtp_num_layers=m.get("mtp_num_layers"), **moe_kwargs(m))
    config = TransformerConfig(**kw)
    spec = get_gpt_layer_local_spec(num_experts=m.get("num_moe_experts"), moe_grouped_gemm=False,
                                    qk_layernorm=bool(m.get("qk_layernorm")),
                                    normalization=m["normalization"])
    extra = {}
    if m.get("mtp_num_layers"):
        extra["mtp_block_spec"] = get_gpt_mtp_block_spec(config, spec, use_transformer_engine=False)
    model = GPTModel(config=config, transformer_layer_spec=spec, vocab_size=v["vocab_size"],
                     max_sequence_length=m["seq_length"],
                     position_embedding_type=m["position_embedding_type"],
                     share_embeddings_and_output_weights=not m["untie_embeddings_and_output_weights"],
                     **extra)
    out[name] = sum(p.numel() for p in model.parameters())
print(json.dumps(out))
"""
)

# Megatron-Core's MambaModel needs mamba_ssm / causal-conv1d / Triton (CUDA) and Transformer
# Engine for its stock spec. Construction only touches them through module-level imports, the
# mixer's gated RMSNorm class and the final TENorm, so the script stubs exactly those and
# builds megatron/core/models/mamba/mamba_layer_specs.py's mamba_stack_spec with Megatron's
# local (non-TE) linear layers. Everything whose shape is being checked (in_proj, conv1d,
# dt_bias, A_log, D, out_proj, attention, MLP, router, experts, shared expert, embedding,
# output) is real Megatron-Core code. Stub shapes follow mamba_ssm: RMSNorm(hidden_size) has one
# weight of size hidden_size and no bias; TE's RMSNorm has one weight of size hidden_size.
HYBRID_BUILD = (
    _DIST_SETUP
    + r"""
class GatedRMSNorm(torch.nn.Module):  # mamba_ssm.ops.triton.layernorm_gated.RMSNorm
    def __init__(self, hidden_size, eps=1e-5, group_size=None, norm_before_gate=True,
                 device=None, dtype=None):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(hidden_size, device=device, dtype=dtype))
        self.register_parameter("bias", None)

def _stub(name, **attrs):
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod

for pkg in ("mamba_ssm", "mamba_ssm.ops", "mamba_ssm.ops.triton"):
    _stub(pkg)
_stub("mamba_ssm.ops.triton.layernorm_gated", RMSNorm=GatedRMSNorm)
_stub("mamba_ssm.ops.triton.ssd_combined", mamba_chunk_scan_combined=None,
      mamba_split_conv1d_scan_combined=None)
_stub("mamba_ssm.ops.triton.selective_state_update", selective_state_update=None)
_stub("einops", rearrange=None, repeat=None)  # forward only
_stub("megatron.core.inference.contexts.attention_context.triton.tensor_ops",  # Triton kernels
      tensor_get_slice_after=None, tensor_masked_update=None, tensor_merge=None)

_init_dist()
import contextlib
import megatron.core.ssm.mamba_block as mamba_block
import megatron.core.ssm.mamba_mixer as mamba_mixer
from megatron.core.activations import squared_relu
from megatron.core.fusions.fused_bias_dropout import get_bias_dropout_add
from megatron.core.models.gpt.moe_module_specs import get_moe_module_spec
from megatron.core.models.mamba.mamba_model import MambaModel
from megatron.core.ssm.mamba_block import MambaStack, MambaStackSubmodules
from megatron.core.ssm.mamba_layer import MambaLayer, MambaLayerSubmodules
from megatron.core.ssm.mamba_mixer import MambaMixer, MambaMixerSubmodules
from megatron.core.ssm.mlp_layer import MLPLayer
from megatron.core.tensor_parallel import ColumnParallelLinear, RowParallelLinear
from megatron.core.transformer.attention import SelfAttention, SelfAttentionSubmodules
from megatron.core.transformer.dot_product_attention import DotProductAttention
from megatron.core.transformer.enums import AttnMaskType
from megatron.core.transformer.mlp import MLP, MLPSubmodules
from megatron.core.transformer.spec_utils import ModuleSpec
from megatron.core.transformer.torch_norm import WrappedTorchNorm
from megatron.core.transformer.transformer_config import TransformerConfig
from megatron.core.transformer.transformer_layer import (
    MoETransformerLayer, TransformerLayer, TransformerLayerSubmodules)

mamba_mixer.HAVE_MAMBA_SSM = True
mamba_mixer.get_cuda_rng_tracker = lambda: types.SimpleNamespace(fork=contextlib.nullcontext)
mamba_block.TENorm = lambda config, hidden_size, eps=1e-5: WrappedTorchNorm(config, hidden_size, eps)

def stack_spec(num_experts):
    # mamba_stack_spec with local modules: the pre-norms TE fuses into in_proj / linear_qkv /
    # linear_fc1 become separate norm modules of the same size.
    return ModuleSpec(module=MambaStack, submodules=MambaStackSubmodules(
        mamba_layer=ModuleSpec(module=MambaLayer, submodules=MambaLayerSubmodules(
            norm=WrappedTorchNorm,
            mixer=ModuleSpec(module=MambaMixer, submodules=MambaMixerSubmodules(
                in_proj=ColumnParallelLinear, out_proj=RowParallelLinear)),
            mamba_bda=get_bias_dropout_add)),
        attention_layer=ModuleSpec(module=TransformerLayer, submodules=TransformerLayerSubmodules(
            input_layernorm=WrappedTorchNorm,
            self_attention=ModuleSpec(module=SelfAttention,
                params={"attn_mask_type": AttnMaskType.causal},
                submodules=SelfAttentionSubmodules(linear_qkv=ColumnParallelLinear,
                    core_attention=DotProductAttention, linear_proj=RowParallelLinear)),
            self_attn_bda=get_bias_dropout_add)),
        mlp_layer=ModuleSpec(module=MLPLayer, submodules=TransformerLayerSubmodules(
            pre_mlp_layernorm=WrappedTorchNorm,
            mlp=ModuleSpec(module=MLP, submodules=MLPSubmodules(
                linear_fc1=ColumnParallelLinear, linear_fc2=RowParallelLinear)),
            mlp_bda=get_bias_dropout_add)),
        moe_layer=ModuleSpec(module=MoETransformerLayer, submodules=TransformerLayerSubmodules(
            pre_mlp_layernorm=WrappedTorchNorm,
            mlp=get_moe_module_spec(use_te=False, num_experts=num_experts or 1,
                                    moe_grouped_gemm=False),
            mlp_bda=get_bias_dropout_add)),
    ))

out = {}
for name, v in json.loads(sys.argv[1]).items():
    m = v["model"]
    assert m["activation"] == "squared_relu"
    config = TransformerConfig(**COMMON,
        num_layers=m["num_layers"], hidden_size=m["hidden_size"], ffn_hidden_size=m["ffn_hidden_size"],
        num_attention_heads=m["num_attention_heads"], num_query_groups=m["num_query_groups"],
        kv_channels=m.get("kv_channels"), normalization=m["normalization"],
        activation_func=squared_relu, gated_linear_unit=False, add_bias_linear=m["add_bias_linear"],
        mamba_state_dim=m["mamba_state_dim"], mamba_head_dim=m["mamba_head_dim"],
        mamba_num_groups=m["mamba_num_groups"], mamba_num_heads=m.get("mamba_num_heads"),
        **moe_kwargs(m))
    model = MambaModel(config=config, mamba_stack_spec=stack_spec(m.get("num_moe_experts")),
                       vocab_size=v["vocab_size"], max_sequence_length=m["seq_length"],
                       hybrid_override_pattern=m["hybrid_override_pattern"],
                       position_embedding_type=m["position_embedding_type"],
                       share_embeddings_and_output_weights=not m["untie_embeddings_and_output_weights"])
    out[name] = sum(p.numel() for p in model.parameters())
print(json.dumps(out))
"""
)


# The repo's own trainer builder (nemotron/train/models.py), which pads the vocabulary itself and
# applies its defaults to keys a config leaves out.
PROJECT_BUILD = (
    _DIST_SETUP
    + r"""
_init_dist()
from nemotron.train.models import build_model

out = {}
for name, v in json.loads(sys.argv[1]).items():
    model = build_model(v["model"], v["tokenizer_vocab_size"], tp_size=1, cuda=False, bf16=False)
    out[name] = sum(p.numel() for p in model.parameters())
print(json.dumps(out))
"""
)


def build_in_subprocess(script: str, variants: dict[str, dict], vocab: int) -> dict[str, tuple[int, int]]:
    """{name: (analytic total, Megatron total)} for every variant."""
    expected = {name: count_parameters(model, vocab) for name, model in variants.items()}
    payload = {
        name: {"model": model, "vocab_size": expected[name].padded_vocab_size, "tokenizer_vocab_size": vocab}
        for name, model in variants.items()
    }
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps(payload)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
    )
    assert proc.returncode == 0, f"Megatron build failed:\n{proc.stderr[-6000:]}"
    built = json.loads(proc.stdout.strip().splitlines()[-1])
    return {name: (expected[name].total, built[name]) for name in variants}


def gpt_variants() -> dict[str, dict]:
    tiny = load("tiny")
    return {
        "tiny": tiny,
        # tied embeddings + multi-query attention
        "tied_mqa": {**tiny, "untie_embeddings_and_output_weights": False, "num_query_groups": 1},
        # explicit kv_channels != hidden/heads, biases, LayerNorm (weight+bias), GELU (not gated),
        # QK-norm, learned absolute positions, odd sizes
        "bias_layernorm": {
            **tiny,
            "num_layers": 3,
            "num_attention_heads": 8,
            "num_query_groups": 4,
            "kv_channels": 12,
            "ffn_hidden_size": 100,
            "add_bias_linear": True,
            "normalization": "LayerNorm",
            "activation": "gelu",
            "qk_layernorm": True,
            "position_embedding_type": "learned_absolute",
        },
        # every layer MoE: router, 4 SwiGLU experts, a shared expert
        "moe": {
            **tiny,
            "num_moe_experts": 4,
            "moe_router_topk": 2,
            "moe_ffn_hidden_size": 48,
            "moe_shared_expert_intermediate_size": 96,
        },
        # two multi-token-prediction blocks
        "mtp": {**tiny, "mtp_num_layers": 2},
    }


def hybrid_variants() -> dict[str, dict]:
    """Small models with every nano3 setting except the sizes; all four layer kinds."""
    small = {
        **load("nano3"),
        "num_layers": 6,
        "hybrid_override_pattern": "M*-EME",
        "hidden_size": 64,
        "ffn_hidden_size": 96,
        "num_attention_heads": 4,
        "num_query_groups": 2,
        "kv_channels": 32,
        "seq_length": 64,
        "mamba_state_dim": 16,
        "mamba_head_dim": 16,
        "mamba_num_heads": 8,
        "mamba_num_groups": 2,
        "num_moe_experts": 4,
        "moe_router_topk": 2,
        "moe_ffn_hidden_size": 32,
        "moe_shared_expert_intermediate_size": 64,
    }
    return {
        "hybrid": small,
        # tied, no shared expert, Mamba heads derived from expand * hidden / head_dim
        "hybrid_tied": {
            **small,
            "num_layers": 4,
            "hybrid_override_pattern": "MM*E",
            "untie_embeddings_and_output_weights": False,
            "moe_shared_expert_intermediate_size": None,
            "mamba_num_heads": None,
            "mamba_head_dim": 32,
        },
    }


@pytest.fixture(scope="module")
def gpt_built():
    # 2000 is padded to 2048: the analytic padding must agree with the vocab Megatron gets.
    return build_in_subprocess(GPT_BUILD, gpt_variants(), vocab=2000)


@pytest.fixture(scope="module")
def hybrid_built():
    return build_in_subprocess(HYBRID_BUILD, hybrid_variants(), vocab=1000)


# --------------------------------------------------------------------------------------------
# (a) + (b): exact agreement with Megatron-Core


@pytest.mark.slow
def test_tiny_matches_megatron_gpt_model(gpt_built):
    analytic, megatron = gpt_built["tiny"]
    assert analytic == megatron
    # Same number with the real tiny-bpe vocabulary size (2048, no padding).
    assert count_parameters(load("tiny"), 2048).total == megatron


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["tied_mqa", "bias_layernorm", "moe", "mtp"])
def test_gpt_variants_match_megatron(gpt_built, variant):
    analytic, megatron = gpt_built[variant]
    assert analytic == megatron


@pytest.mark.slow
def test_counts_match_the_trainers_own_builder():
    """nemotron.train.models.build_model: tiny, and a config that relies on the builder's defaults."""
    tiny = load("tiny")
    minimal = {key: tiny[key] for key in ("name", "num_layers", "hidden_size", "ffn_hidden_size",
                                          "num_attention_heads", "seq_length")}
    built = build_in_subprocess(PROJECT_BUILD, {"tiny": tiny, "minimal": minimal}, vocab=2000)
    for name, (analytic, megatron) in built.items():
        assert analytic == megatron, name


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["hybrid", "hybrid_tied"])
def test_hybrid_matches_megatron_mamba_model(hybrid_built, variant):
    analytic, megatron = hybrid_built[variant]
    assert analytic == megatron


# --------------------------------------------------------------------------------------------
# (c): published sizes


def test_nano3_structure_matches_the_published_architecture():
    nano = load("nano3")
    pattern = nano["hybrid_override_pattern"]
    assert len(pattern) == nano["num_layers"] == 52
    assert (pattern.count("M"), pattern.count("E"), pattern.count("*")) == (23, 23, 6)
    assert nano["architecture"] == "hybrid"
    assert nano["requires_gpu"] is True and nano["gpu_only_reason"].strip()


def test_nano3_total_and_active_within_2_percent_of_published():
    count = count_parameters(load("nano3"), NANO3_VOCAB)
    assert count.padded_vocab_size == NANO3_VOCAB
    assert abs(count.total / NANO3_TOTAL - 1) < 0.02, format_count(count.total)
    assert abs(count.active / NANO3_ACTIVE - 1) < 0.02, format_count(count.active)
    no_embed = count.active - count.breakdown["embedding"]
    assert abs(no_embed / NANO3_ACTIVE_NO_EMBED - 1) < 0.02, format_count(no_embed)
    # Mixture of experts dominates: ~29.4B of the experts sit idle for any one token.
    assert count.breakdown["moe_experts"] > 0.9 * count.total


def test_super3_total_and_active_near_published():
    sup = load("super3")
    pattern = sup["hybrid_override_pattern"]
    assert (len(pattern), pattern.count("M"), pattern.count("E"), pattern.count("*")) == (88, 40, 40, 8)
    assert sup["architecture"] == "hybrid" and sup["requires_gpu"] is True
    count = count_parameters(sup, SUPER3_VOCAB)
    main_model = count.total - count.breakdown["mtp"]
    assert abs(main_model / SUPER3_TOTAL - 1) < 0.02, format_count(main_model)
    # "12B active" is a rounded label: 12.2B without, 12.8B with the input embedding.
    assert 11.5e9 < count.active - count.breakdown["embedding"] < 12.5e9
    assert 0 < count.breakdown["mtp"] < 0.05 * count.total
    assert count.breakdown["moe_latent"] > 0


# --------------------------------------------------------------------------------------------
# invariants and helpers


@pytest.mark.parametrize(("name", "vocab"), [("tiny", 2048), ("nano3", NANO3_VOCAB), ("super3", SUPER3_VOCAB)])
def test_breakdown_is_complete_and_sums_to_total(name, vocab):
    count = count_parameters(load(name), vocab)
    assert isinstance(count, ParameterCount)
    assert set(count.breakdown) == set(BREAKDOWN_KEYS)
    assert sum(count.breakdown.values()) == count.total
    assert 0 < count.active <= count.total


def test_dense_model_is_all_active_and_defaults_to_gpt():
    tiny = load("tiny")
    assert "architecture" not in tiny
    count = count_parameters(tiny, 2048)
    assert count.active == count.total
    assert count == count_parameters({**tiny, "architecture": "gpt"}, 2048)
    assert count.breakdown["mamba"] == count.breakdown["moe_experts"] == 0


def test_works_with_an_omegaconf_config():
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(MODEL_DIR / "nano3.yaml")
    assert count_parameters(cfg, NANO3_VOCAB) == count_parameters(load("nano3"), NANO3_VOCAB)


def test_vocab_padding():
    assert padded_vocab_size(2048) == 2048
    assert padded_vocab_size(2000) == 2048
    assert padded_vocab_size(50257, 128, tensor_model_parallel_size=8) == 51200
    tiny = load("tiny")
    a = count_parameters(tiny, 2000)
    b = count_parameters({**tiny, "make_vocab_size_divisible_by": 1}, 2000)
    assert a.padded_vocab_size == 2048 and b.padded_vocab_size == 2000
    assert a.total - b.total == 2 * 48 * tiny["hidden_size"]  # embedding + untied output


def test_invalid_configs_are_rejected():
    nano = load("nano3")
    with pytest.raises(ValueError, match="num_layers"):
        count_parameters({**nano, "num_layers": 51}, NANO3_VOCAB)
    with pytest.raises(ValueError, match="unknown symbols"):
        count_parameters({**nano, "hybrid_override_pattern": "X" * 52}, NANO3_VOCAB)
    with pytest.raises(ValueError, match="architecture"):
        count_parameters({**nano, "architecture": "rwkv"}, NANO3_VOCAB)
    with pytest.raises(ValueError, match="activation"):
        count_parameters({**load("tiny"), "activation": "mystery"}, 2048)


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0"),
        (999, "999"),
        (354_624, "354.6K"),
        (1_500_000, "1.5M"),
        (31_577_937_344, "31.58B"),
        (3_580_073_408, "3.58B"),
        (1_234_000_000_000, "1.23T"),
        (-2_000, "-2.0K"),
    ],
)
def test_format_count(n, text):
    assert format_count(n) == text
