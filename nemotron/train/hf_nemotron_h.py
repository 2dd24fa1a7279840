"""Megatron-Core's hybrid model (Nemotron-H) <-> Hugging Face ``NemotronHForCausalLM``.

Both directions of the mapping: our model config -> config.json and Megatron's state dict ->
the Hugging Face weights (used by :mod:`nemotron.train.hf_export`), and config.json -> our
model config (used by ``model import``, without torch). Which architectures qualify is
:func:`nemotron.kit.model_formats.incompatibilities`.

The weights are written in the layout of NVIDIA's released Nemotron-H checkpoints, which vLLM
reads as is and transformers 5 converts on load (``backbone.`` -> ``model.``, the experts'
matrices stacked into one tensor per layer):

    embedding.word_embeddings.weight                  backbone.embeddings.weight [:vocab]
    decoder.layers.N.norm.weight              (M)     backbone.layers.N.norm.weight
    decoder.layers.N.input_layernorm.weight   (*)     backbone.layers.N.norm.weight
    decoder.layers.N.pre_mlp_layernorm.weight (-, E)  backbone.layers.N.norm.weight
    decoder.layers.N.mixer.X                  (M)     backbone.layers.N.mixer.X   X: in_proj.weight, conv1d.weight,
                                                      conv1d.bias, A_log, D, dt_bias, norm.weight, out_proj.weight
    decoder.layers.N.self_attention.linear_qkv        backbone.layers.N.mixer.{q,k,v}_proj.weight
    decoder.layers.N.self_attention.linear_proj       backbone.layers.N.mixer.o_proj.weight
    decoder.layers.N.mlp.linear_fc1 / fc2     (-)     backbone.layers.N.mixer.up_proj / down_proj.weight
    decoder.layers.N.mlp.router.weight        (E)     backbone.layers.N.mixer.gate.weight
    decoder.layers.N.mlp.router.expert_bias           backbone.layers.N.mixer.gate.e_score_correction_bias
    decoder.layers.N.mlp.experts.local_experts.K.linear_fc1 / fc2
                                                      backbone.layers.N.mixer.experts.K.up_proj / down_proj.weight
    decoder.layers.N.mlp.shared_experts.linear_fc1 / fc2
                                                      backbone.layers.N.mixer.shared_experts.up_proj / down_proj.weight
    decoder.final_norm.weight                         backbone.norm_f.weight
    output_layer.weight (or the embedding, tied)      lm_head.weight [:vocab]

The Mamba tensors need no reordering: both sides split in_proj's rows as [z, x, B, C, dt],
keep conv1d's channels as [x, B, C] and normalise the gated output (y * silu(z)) in groups of
d_inner / n_groups. Where the two could still differ:
- the router: both pick the top k of sigmoid(logits) + expert bias and weight the picked
  experts by their *unbiased* sigmoid scores, normalised to sum 1 when k > 1 and times the
  scaling factor; NemotronH always adds its ``e_score_correction_bias``, so a model without
  expert bias gets zeros;
- dt: NemotronH clamps softplus(dt + dt_bias) from below at ``time_step_min``, Megatron-Core's
  kernels do not (dt_limit (0, inf)); trained heads do go below the usual 0.001;
- the output layer: NemotronHForCausalLM never ties ``lm_head`` to the embedding, so a model
  with tied embeddings gets a copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nemotron.kit.model_formats import NEMOTRON_H_ACTIVATIONS

HF_ARCHITECTURE = "NemotronHForCausalLM"
LAYER_TYPES = {"M": "linear_attention", "*": "full_attention", "-": "mlp", "E": "moe"}
# Older configs name the layer types after the modules (transformers' remap_legacy_layer_types).
_SYMBOLS = {**{kind: symbol for symbol, kind in LAYER_TYPES.items()}, "mamba": "M", "attention": "*"}
_MIXER_TENSORS = ("in_proj.weight", "conv1d.weight", "conv1d.bias", "A_log", "D", "dt_bias", "norm.weight",
                  "out_proj.weight")
# Small enough never to bind (see the module docstring), not 0: transformers takes its log to
# initialise dt_bias when a model is made from the config alone.
TIME_STEP_MIN = 1e-30
MAMBA_CHUNK_SIZE = 128  # Megatron-Core's MambaMixer default; the scan's result does not depend on it
# NemotronHConfig's defaults (transformers' configuration_nemotron_h.py) for what a config.json
# saved by transformers leaves out when it equals them.
_HF_DEFAULTS = {
    "tie_word_embeddings": False, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
    "max_position_embeddings": 4096, "intermediate_size": 21504, "mlp_hidden_act": "relu2", "mlp_bias": False,
    "use_bias": False, "ssm_state_size": 128, "mamba_num_heads": 128, "mamba_head_dim": 64, "n_groups": 8,
    "conv_kernel": 4, "expand": 2, "n_routed_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 7688,
    "moe_shared_expert_intermediate_size": 7688, "moe_latent_size": None, "routed_scaling_factor": 1.0,
    "n_group": 1, "topk_group": 1, "norm_topk_prob": True, "num_nextn_predict_layers": 0,
    "layer_norm_epsilon": 1e-5, "initializer_range": 0.02,
}
_HF_ALIASES = {"n_groups": "mamba_n_groups", "conv_kernel": "mamba_d_conv", "expand": "mamba_expand"}


def mamba_heads(architecture: Mapping[str, Any]) -> int:
    """The Mamba mixer's head count (the model schema's rule when it is not given)."""
    head_dim = int(architecture["mamba_head_dim"])
    return int(architecture.get("mamba_num_heads")
               or int(architecture["hidden_size"]) * int(architecture.get("mamba_expand") or 2) // head_dim)


def hf_config(architecture: Mapping[str, Any], vocab_size: int, *, token_ids: Mapping[str, int | None]) -> dict[str, Any]:
    """config.json of the NemotronHForCausalLM equivalent to ``architecture`` (no transformers needed).

    The layer pattern is written both ways: ``layers_block_type`` (transformers 5) and
    ``hybrid_override_pattern`` (the released checkpoints' configs, vLLM).
    """
    from nemotron.train.hf_attention import head_dim, query_groups

    pattern = str(architecture["hybrid_override_pattern"])
    topk = int(architecture.get("moe_router_topk") or 2)
    config: dict[str, Any] = {
        "architectures": [HF_ARCHITECTURE],
        "model_type": "nemotron_h",
        "vocab_size": int(vocab_size),
        "hidden_size": int(architecture["hidden_size"]),
        "layers_block_type": [LAYER_TYPES[symbol] for symbol in pattern],
        "hybrid_override_pattern": pattern,
        "num_hidden_layers": len(pattern),
        "tie_word_embeddings": False,
        "num_attention_heads": int(architecture["num_attention_heads"]),
        "num_key_value_heads": query_groups(architecture),
        "head_dim": head_dim(architecture),
        "max_position_embeddings": int(architecture["seq_length"]),
        "attention_bias": False,
        "attention_dropout": 0.0,
        "intermediate_size": int(architecture["ffn_hidden_size"]),
        "mlp_hidden_act": NEMOTRON_H_ACTIVATIONS[architecture.get("activation", "squared_relu")],
        "mlp_bias": False,
        "use_bias": False,
        "ssm_state_size": int(architecture["mamba_state_dim"]),
        "mamba_num_heads": mamba_heads(architecture),
        "mamba_head_dim": int(architecture["mamba_head_dim"]),
        "n_groups": int(architecture["mamba_num_groups"]),
        "conv_kernel": int(architecture.get("mamba_conv_kernel") or 4),
        "expand": int(architecture.get("mamba_expand") or 2),
        "mamba_hidden_act": "silu",
        "use_conv_bias": True,
        "mamba_proj_bias": False,
        "chunk_size": MAMBA_CHUNK_SIZE,
        "time_step_min": TIME_STEP_MIN,
        "time_step_max": 0.1,
        "time_step_floor": 1e-4,
        "num_nextn_predict_layers": 0,
        "residual_in_fp32": False,
        "layer_norm_epsilon": float(architecture.get("layernorm_epsilon", 1e-5)),
        "initializer_range": float(architecture.get("init_method_std", 0.02)),
        "hidden_dropout": 0.0,
        "bos_token_id": token_ids.get("bos"),
        "eos_token_id": token_ids.get("eos"),
        "pad_token_id": token_ids.get("pad"),
        "use_cache": True,
        "num_logits_to_keep": 1,
        "dtype": "float32",
        "torch_dtype": "float32",
    }
    if "E" in pattern:
        config.update({
            "n_routed_experts": int(architecture["num_moe_experts"]),
            "num_experts_per_tok": topk,
            "moe_intermediate_size": int(architecture.get("moe_ffn_hidden_size") or architecture["ffn_hidden_size"]),
            "moe_shared_expert_intermediate_size": int(architecture["moe_shared_expert_intermediate_size"]),
            "n_shared_experts": 1,
            "moe_latent_size": None,
            "routed_scaling_factor": float(architecture.get("moe_router_topk_scaling_factor") or 1.0),
            # Megatron-Core normalises sigmoid scores of more than one expert (topk_routing_with_score_function).
            "norm_topk_prob": topk > 1,
            "n_group": 1,
            "topk_group": 1,
        })
    return config


def convert_state_dict(state: Mapping[str, Any], architecture: Mapping[str, Any], vocab_size: int):
    """Megatron hybrid state dict (local layer spec, tensor parallel 1) -> NemotronH's names.

    Every weight is consumed exactly once; a weight left over or missing is an error, so a
    layer this mapping does not know cannot be exported silently wrong.
    """
    import torch

    from nemotron.train.hf_attention import head_dim, query_groups, split_qkv

    weights = {k: v for k, v in state.items() if isinstance(v, torch.Tensor) and not k.endswith("._extra_state")}
    take = weights.pop
    heads, groups, dim = int(architecture["num_attention_heads"]), query_groups(architecture), head_dim(architecture)
    out: dict[str, torch.Tensor] = {}

    embedding = take("embedding.word_embeddings.weight")
    if embedding.shape[0] < vocab_size:
        raise ValueError(f"the checkpoint's embedding has {embedding.shape[0]} rows, fewer than the tokenizer's {vocab_size} tokens")
    out["backbone.embeddings.weight"] = embedding[:vocab_size]
    for n, symbol in enumerate(str(architecture["hybrid_override_pattern"])):
        src, dst = f"decoder.layers.{n}.", f"backbone.layers.{n}."
        if symbol == "M":
            out[dst + "norm.weight"] = take(src + "norm.weight")
            for name in _MIXER_TENSORS:
                out[dst + "mixer." + name] = take(src + "mixer." + name)
        elif symbol == "*":
            out[dst + "norm.weight"] = take(src + "input_layernorm.weight")
            q, k, v = split_qkv(take(src + "self_attention.linear_qkv.weight"), heads, groups, dim)
            out[dst + "mixer.q_proj.weight"], out[dst + "mixer.k_proj.weight"], out[dst + "mixer.v_proj.weight"] = q, k, v
            out[dst + "mixer.o_proj.weight"] = take(src + "self_attention.linear_proj.weight")
        elif symbol == "-":
            out[dst + "norm.weight"] = take(src + "pre_mlp_layernorm.weight")
            out.update(_mlp(take, src + "mlp.", dst + "mixer."))
        else:
            out[dst + "norm.weight"] = take(src + "pre_mlp_layernorm.weight")
            router = take(src + "mlp.router.weight")
            out[dst + "mixer.gate.weight"] = router
            bias = weights.pop(src + "mlp.router.expert_bias", None)
            out[dst + "mixer.gate.e_score_correction_bias"] = (
                bias if bias is not None else torch.zeros(router.shape[0], dtype=torch.float32))
            for expert in range(router.shape[0]):
                out.update(_mlp(take, f"{src}mlp.experts.local_experts.{expert}.", f"{dst}mixer.experts.{expert}."))
            out.update(_mlp(take, src + "mlp.shared_experts.", dst + "mixer.shared_experts."))
    out["backbone.norm_f.weight"] = take("decoder.final_norm.weight")
    output = weights.pop("output_layer.weight", None)
    out["lm_head.weight"] = (embedding if output is None else output)[:vocab_size]
    if weights:
        raise ValueError(f"weights without a NemotronH counterpart: {', '.join(sorted(weights)[:5])}")
    return {name: tensor.detach().to(torch.float32).contiguous().clone() for name, tensor in out.items()}


def _mlp(take, src: str, dst: str) -> dict[str, Any]:
    """A non-gated MLP: fc1 is NemotronH's up_proj as is (a gated fc1 would be twice as tall,
    which check_against_transformers refuses)."""
    return {dst + "up_proj.weight": take(src + "linear_fc1.weight"), dst + "down_proj.weight": take(src + "linear_fc2.weight")}


def check_against_transformers(config: Mapping[str, Any], weights: Mapping[str, Any]) -> None:
    """Every parameter NemotronHForCausalLM declares is there with its shape, and nothing else,
    once transformers' own conversion of the released layout is applied (backbone. -> model.,
    experts stacked)."""
    import re

    import torch
    from transformers import NemotronHConfig, NemotronHForCausalLM

    with torch.device("meta"):
        reference = NemotronHForCausalLM(NemotronHConfig.from_dict(dict(config)))
    expected = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    ours: dict[str, tuple[int, ...]] = {}
    stacked: dict[str, list[tuple[int, ...]]] = {}
    for name, tensor in weights.items():
        name = "model." + name[len("backbone."):] if name.startswith("backbone.") else name
        expert = re.fullmatch(r"(.*\.mixer\.experts)\.\d+\.(up_proj|down_proj)\.weight", name)
        if expert:
            stacked.setdefault(f"{expert.group(1)}.{expert.group(2)}", []).append(tuple(tensor.shape))
        else:
            ours[name] = tuple(tensor.shape)
    for name, shapes in stacked.items():
        ours[name] = (len(shapes), *shapes[0]) if len(set(shapes)) == 1 else ("experts of different shapes",)
    if ours != expected:
        wrong = sorted(set(ours.items()) ^ set(expected.items()))[:4]
        raise ValueError(f"converted weights do not match {HF_ARCHITECTURE}: {wrong}")


def architecture_from_hf(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Our model config (conf/model/*.yaml fields) of a NemotronH config.json; ValueError for
    one our model config cannot express. Training-only settings (load balancing, aux loss,
    router dtype) are not in config.json and keep the model schema's defaults."""
    def get(key: str) -> Any:
        if key in config:
            return config[key]
        return config.get(_HF_ALIASES.get(key, ""), _HF_DEFAULTS[key])

    pattern = config.get("hybrid_override_pattern")
    if not pattern:
        types = config.get("layers_block_type") or config.get("layer_types")
        if not types:
            raise ValueError("config.json has neither hybrid_override_pattern nor layers_block_type")
        if unknown := sorted(set(types) - set(_SYMBOLS)):
            raise ValueError(f"unknown layer types {unknown} in layers_block_type")
        pattern = "".join(_SYMBOLS[kind] for kind in types)
    activations = {hf: ours for ours, hf in NEMOTRON_H_ACTIVATIONS.items()}
    if get("mlp_hidden_act") not in activations:
        raise ValueError(f"mlp_hidden_act={get('mlp_hidden_act')!r} (our hybrid models: {', '.join(activations)})")
    architecture: dict[str, Any] = {
        "name": name,
        "architecture": "hybrid",
        "num_layers": len(pattern),
        "hybrid_override_pattern": pattern,
        "hidden_size": int(config["hidden_size"]),
        "ffn_hidden_size": int(get("intermediate_size")),
        "num_attention_heads": int(get("num_attention_heads")),
        "num_query_groups": int(get("num_key_value_heads") or get("num_attention_heads")),
        "kv_channels": int(get("head_dim")),
        "seq_length": int(get("max_position_embeddings")),
        "position_embedding_type": "none",
        "normalization": "RMSNorm",
        "layernorm_epsilon": float(get("layer_norm_epsilon")),
        "activation": activations[get("mlp_hidden_act")],
        "add_bias_linear": bool(get("use_bias") or get("mlp_bias")),
        "untie_embeddings_and_output_weights": not get("tie_word_embeddings"),
        "init_method_std": float(get("initializer_range")),
        "mamba_state_dim": int(get("ssm_state_size")),
        "mamba_head_dim": int(get("mamba_head_dim")),
        "mamba_num_heads": int(get("mamba_num_heads")),
        "mamba_num_groups": int(get("n_groups")),
        "mamba_conv_kernel": int(get("conv_kernel")),
        "mamba_expand": int(get("expand")),
    }
    if "E" in pattern:
        topk = int(get("num_experts_per_tok"))
        if bool(get("norm_topk_prob")) != (topk > 1):
            raise ValueError(f"norm_topk_prob={get('norm_topk_prob')} with {topk} experts per token "
                             "(Megatron-Core normalises exactly when more than one is picked)")
        if int(get("topk_group")) < int(get("n_group")):
            raise ValueError(f"group-limited routing (n_group={get('n_group')}, topk_group={get('topk_group')})")
        architecture.update({
            "num_moe_experts": int(get("n_routed_experts")),
            "moe_router_topk": topk,
            "moe_ffn_hidden_size": int(get("moe_intermediate_size")),
            "moe_shared_expert_intermediate_size": int(get("moe_shared_expert_intermediate_size")),
            "moe_router_score_function": "sigmoid",
            "moe_router_topk_scaling_factor": float(get("routed_scaling_factor")),
            "moe_router_enable_expert_bias": True,  # NemotronH's router always has one
        })
        if get("moe_latent_size"):
            architecture["moe_latent_size"] = int(get("moe_latent_size"))
    if int(get("num_nextn_predict_layers")):
        architecture["mtp_num_layers"] = int(get("num_nextn_predict_layers"))
        mtp = config.get("mtp_hybrid_override_pattern") or "".join(
            _SYMBOLS.get(kind, "?") for kind in config.get("mtp_layers_block_type") or ["full_attention", "moe"])
        architecture["mtp_hybrid_override_pattern"] = mtp
    return architecture
