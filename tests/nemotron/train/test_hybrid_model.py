"""Building Nemotron-H: Megatron-Core's hybrid model from a model config, under its 0.16 name
(``MambaModel``) here and its newer one (``HybridModel``), every layer kind in place."""

from __future__ import annotations

import re
import sys
import types

import pytest

from helpers import run_python

BUILD = r"""
import os, random, pathlib
os.environ.update(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(random.randint(20000, 40000)))
from omegaconf import OmegaConf
import nemotron
from nemotron.train import distributed
from nemotron.train.models import build_model
from nemotron.train.param_count import count_parameters

distributed.initialize(1, 1234, cuda=False)
config = OmegaConf.to_container(OmegaConf.load(pathlib.Path(nemotron.__file__).parents[1] / "conf/model/nano3_tiny.yaml"))
model = build_model(config, 2048, 1, cuda=False, bf16=False)
print(type(model).__name__)
print(" ".join(type(layer).__name__ for layer in model.decoder.layers))
print(type(model.decoder.layers[0].mixer.norm).__name__, type(model.decoder.final_norm).__name__)
print(sum(p.numel() for p in model.parameters()), count_parameters(config, 2048).total)
"""


def test_nano3_tiny_builds_every_layer_kind_of_its_pattern_under_two_million_parameters():
    done = run_python(BUILD, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    name, layers, norms, counts = done.stdout.strip().splitlines()[-4:]
    assert name == "MambaModel"
    assert layers.split() == ["MambaLayer", "MoETransformerLayer", "MambaLayer", "TransformerLayer",
                              "MoETransformerLayer", "MLPLayer"]  # MEM*E-
    assert norms.split()[0] == "ExtendedRMSNorm" and norms.split()[1] == "RMSNorm"
    built, counted = map(int, counts.split())
    assert built == counted < 2_000_000  # nemotron model params counts what Megatron-Core builds


def test_newer_megatron_core_is_built_through_hybrid_model_and_hybrid_layer_pattern(monkeypatch):
    """megatron-core after 0.16 renames MambaModel / hybrid_override_pattern; the adapter takes
    the new names where they exist."""
    from nemotron.schemas.model import model_config
    from nemotron.train import hybrid

    made = {}

    class HybridModel:
        def __init__(self, **kwargs):
            made.update(kwargs)

    module = types.ModuleType("megatron.core.models.hybrid")
    module.HybridModel = HybridModel
    monkeypatch.setitem(sys.modules, "megatron.core.models.hybrid", module)
    model = model_config(dict(name="h", architecture="hybrid", num_layers=2, hybrid_override_pattern="M*",
                              hidden_size=64, ffn_hidden_size=128, num_attention_heads=4, seq_length=32,
                              position_embedding_type="none", mamba_state_dim=16, mamba_head_dim=16,
                              mamba_num_groups=2))
    built = hybrid.hybrid_model("config", model, "spec", 2048)
    assert isinstance(built, HybridModel)
    assert (made["hybrid_stack_spec"], made["hybrid_layer_pattern"], made["vocab_size"]) == ("spec", "M*", 2048)
    assert "mamba_stack_spec" not in made and "hybrid_override_pattern" not in made


@pytest.mark.parametrize(("fields", "message"), [
    ({"hybrid_override_pattern": "M*E-", "num_moe_experts": None}, "has MoE layers (E) but no num_moe_experts"),
    ({"mamba_num_heads": 6, "mamba_num_groups": 4}, "mamba_num_heads=6 is not a multiple of"),
    ({"mtp_num_layers": 1}, "multi-token prediction"),
])
def test_hybrid_configs_the_builder_cannot_make_are_refused_by_name(fields, message):
    from nemotron.train.buildable import UnsupportedModel, check_supported

    model = dict(name="h", architecture="hybrid", num_layers=4, hybrid_override_pattern="M*M-", hidden_size=64,
                 ffn_hidden_size=128, num_attention_heads=4, seq_length=32, position_embedding_type="none",
                 mamba_state_dim=16, mamba_head_dim=16, mamba_num_groups=2, num_moe_experts=4, moe_router_topk=2)
    with pytest.raises(UnsupportedModel, match=re.escape(message)):
        check_supported({**model, **fields}, cuda=False)
