"""Megatron-LM's saved arguments -> our model config (the import's architecture)."""

import pytest

from nemotron.train.models import UnsupportedModel, check_supported
from nemotron.train.megatron_lm import architecture_from_args

DENSE = {"num_layers": 4, "hidden_size": 256, "num_attention_heads": 8, "seq_length": 512,
         "ffn_hidden_size": None, "group_query_attention": False, "num_query_groups": 1,
         "make_vocab_size_divisible_by": 128, "tensor_model_parallel_size": 2}


def test_megatron_lm_defaults_map_to_a_gpt2_style_config():
    architecture = architecture_from_args(DENSE)
    assert architecture["ffn_hidden_size"] == 1024 and architecture["num_query_groups"] == 8
    assert architecture["kv_channels"] == 32 and architecture["activation"] == "gelu"
    assert (architecture["normalization"], architecture["position_embedding_type"]) == ("LayerNorm", "learned_absolute")
    assert architecture["add_bias_linear"] is True and architecture["untie_embeddings_and_output_weights"] is False
    assert architecture["make_vocab_size_divisible_by"] == 256  # the padding the tensor-parallel run used
    check_supported(architecture, cuda=False)


def test_hybrid_and_moe_arguments_give_models_the_trainer_builds():
    hybrid = architecture_from_args({**DENSE, "hybrid_override_pattern": "M*M-", "mamba_state_dim": 16,
                                     "mamba_head_dim": 16, "mamba_num_groups": 2, "squared_relu": True})
    moe = architecture_from_args({**DENSE, "num_experts": 8, "moe_router_topk": 2, "squared_relu": True})
    assert (hybrid["architecture"], hybrid["mamba_state_dim"], hybrid["activation"]) == ("hybrid", 16, "squared_relu")
    assert (moe.get("architecture", "gpt"), moe["num_moe_experts"], moe["moe_router_topk"]) == ("gpt", 8, 2)
    for model in (hybrid, moe):
        check_supported(model, cuda=False)


def test_a_hybrid_model_without_its_mamba_sizes_is_refused_by_name():
    hybrid = architecture_from_args({**DENSE, "hybrid_override_pattern": "M*M*"})
    with pytest.raises(UnsupportedModel, match="needs model.mamba_state_dim"):
        check_supported(hybrid, cuda=False)


def test_arguments_without_the_sizes_give_no_architecture():
    assert architecture_from_args({k: v for k, v in DENSE.items() if k != "seq_length"}) is None


def test_every_architecture_key_of_a_dense_model_reaches_megatron():
    """A model key that is accepted must do something: each lands in Megatron-Core's config."""
    from tests.helpers import run_python

    done = run_python("""
from nemotron.train.models import layer_spec, transformer_config
from nemotron.schemas.model import model_config
model = model_config(dict(name="t", num_layers=2, hidden_size=64, ffn_hidden_size=96, num_attention_heads=4,
                          num_query_groups=2, kv_channels=8, seq_length=16, layernorm_epsilon=1e-6, qk_layernorm=True,
                          add_qkv_bias=True, activation="gelu", hidden_dropout=0.1, attention_dropout=0.2,
                          init_method_std=0.01))
c = transformer_config(model, 1, bf16=False)
spec = layer_spec(model, cuda=False)
print(c.kv_channels, c.layernorm_epsilon, c.qk_layernorm, c.add_qkv_bias, c.gated_linear_unit, c.num_query_groups,
      c.hidden_dropout, c.attention_dropout, c.init_method_std, spec.submodules.self_attention.submodules.q_layernorm.__name__)
""", timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["8", "1e-06", "True", "True", "False", "2", "0.1", "0.2", "0.01", "WrappedTorchNorm"]
