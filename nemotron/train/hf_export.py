"""Megatron-Core checkpoint -> Hugging Face weights and config: a dense GPT model becomes a
``LlamaForCausalLM``, a hybrid one (Nemotron-H, ``architecture: hybrid``) a
``NemotronHForCausalLM`` (its mapping: :mod:`nemotron.train.hf_nemotron_h`).

Entry point of the export process: ``python -m nemotron.train.hf_export JOB.json``, started by
``nemotron.stages.export`` so that Megatron's process-wide state (process group, model
parallel groups, CPU patches) never outlives the conversion. The job file names the
checkpoint (``iter_N``), the recorded model architecture, the tokenizer's vocabulary size and
special token ids, and the directory to write ``config.json`` + ``model.safetensors`` into.

The model is rebuilt on the CPU from the architecture (tensor parallel 1, fp32; any
tensor-parallel layout of the checkpoint loads into it), loaded with dist_checkpointing, and
its state dict renamed; a GPT model's to Llama's:

    embedding.word_embeddings.weight                    model.embed_tokens.weight [:vocab]
    decoder.layers.N.input_layernorm.weight             model.layers.N.input_layernorm.weight
    decoder.layers.N.self_attention.linear_qkv.weight   model.layers.N.self_attn.{q,k,v}_proj.weight
    decoder.layers.N.self_attention.linear_proj.weight  model.layers.N.self_attn.o_proj.weight
    decoder.layers.N.pre_mlp_layernorm.weight           model.layers.N.post_attention_layernorm.weight
    decoder.layers.N.mlp.linear_fc1.weight [gate; up]   model.layers.N.mlp.{gate,up}_proj.weight
    decoder.layers.N.mlp.linear_fc2.weight              model.layers.N.mlp.down_proj.weight
    decoder.final_layernorm.weight                      model.norm.weight
    output_layer.weight                                 lm_head.weight [:vocab]

Megatron's fused QKV rows are grouped per query group: for each of the ``num_query_groups``
groups, the ``heads / groups`` query heads of that group, then its key head, then its value
head, each ``head_dim`` rows. The rows Megatron pads the vocabulary with are cut off, so the
Hugging Face model has exactly the tokenizer's vocabulary.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from nemotron.kit.model_formats import hf_architecture, incompatibilities
from nemotron.train.hf_attention import head_dim, query_groups, split_qkv


def hf_config(architecture: Mapping[str, Any], vocab_size: int, *, rms_norm_eps: float, tied: bool,
              token_ids: Mapping[str, int | None]) -> dict[str, Any]:
    """config.json of the LlamaForCausalLM equivalent to ``architecture`` (no transformers needed).

    ``rope_parameters`` is how transformers 5 spells RoPE; ``rope_theta`` is repeated at the top
    level for readers on transformers 4.
    """
    rope_theta = float(architecture.get("rotary_base", 10000))
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": int(vocab_size),
        "hidden_size": int(architecture["hidden_size"]),
        "intermediate_size": int(architecture["ffn_hidden_size"]),
        "num_hidden_layers": int(architecture["num_layers"]),
        "num_attention_heads": int(architecture["num_attention_heads"]),
        "num_key_value_heads": query_groups(architecture),
        "head_dim": head_dim(architecture),
        "hidden_act": "silu",
        "max_position_embeddings": int(architecture["seq_length"]),
        "rms_norm_eps": float(rms_norm_eps),
        "rope_parameters": {"rope_type": "default", "rope_theta": rope_theta},
        "rope_theta": rope_theta,
        "tie_word_embeddings": bool(tied),
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "initializer_range": float(architecture.get("init_method_std", 0.02)),
        "bos_token_id": token_ids.get("bos"),
        "eos_token_id": token_ids.get("eos"),
        "pad_token_id": token_ids.get("pad"),
        "use_cache": True,
        "dtype": "float32",
        "torch_dtype": "float32",
    }


def generation_config(config: Mapping[str, Any], token_ids: Mapping[str, Any]) -> dict[str, Any]:
    """generation_config.json: generation stops at the end of a document and, for a chat model,
    at the end of a turn (``turn_ends``: what its chat template closes a message with)."""
    eos = config["eos_token_id"]
    stops = [i for i in [eos, *token_ids.get("turn_ends", [])] if i is not None]
    settings = {"bos_token_id": config["bos_token_id"], "eos_token_id": stops if len(stops) > 1 else eos,
                "pad_token_id": config["pad_token_id"]}
    return {key: value for key, value in settings.items() if value is not None}


def convert_state_dict(state: Mapping[str, Any], architecture: Mapping[str, Any], vocab_size: int) -> dict[str, torch.Tensor]:
    """Megatron GPTModel state dict (local or TransformerEngine spec) -> Llama names.

    Every weight is consumed exactly once; a weight left over or missing is an error, so a
    layer spec this mapping does not know cannot be exported silently wrong.
    """
    weights = {k: v for k, v in state.items() if isinstance(v, torch.Tensor) and not k.endswith("._extra_state")}
    # TransformerEngine's spec fuses the norms into the following linear layer.
    renames = {".self_attention.linear_qkv.layer_norm_weight": ".input_layernorm.weight",
               ".mlp.linear_fc1.layer_norm_weight": ".pre_mlp_layernorm.weight"}
    for key in list(weights):
        for fused, plain in renames.items():
            if key.endswith(fused):
                weights[key[: -len(fused)] + plain] = weights.pop(key)
    heads, groups, dim = int(architecture["num_attention_heads"]), query_groups(architecture), head_dim(architecture)
    ffn = int(architecture["ffn_hidden_size"])
    take = weights.pop
    out: dict[str, torch.Tensor] = {}

    embedding = take("embedding.word_embeddings.weight")
    if embedding.shape[0] < vocab_size:
        raise ValueError(f"the checkpoint's embedding has {embedding.shape[0]} rows, fewer than the tokenizer's {vocab_size} tokens")
    out["model.embed_tokens.weight"] = embedding[:vocab_size]
    for n in range(int(architecture["num_layers"])):
        src, dst = f"decoder.layers.{n}.", f"model.layers.{n}."
        out[dst + "input_layernorm.weight"] = take(src + "input_layernorm.weight")
        q, k, v = split_qkv(take(src + "self_attention.linear_qkv.weight"), heads, groups, dim)
        out[dst + "self_attn.q_proj.weight"] = q
        out[dst + "self_attn.k_proj.weight"] = k
        out[dst + "self_attn.v_proj.weight"] = v
        out[dst + "self_attn.o_proj.weight"] = take(src + "self_attention.linear_proj.weight")
        out[dst + "post_attention_layernorm.weight"] = take(src + "pre_mlp_layernorm.weight")
        fc1 = take(src + "mlp.linear_fc1.weight")
        if fc1.shape[0] != 2 * ffn:
            raise ValueError(f"{src}mlp.linear_fc1 has {fc1.shape[0]} rows; a gated (SwiGLU) MLP of {ffn} needs {2 * ffn}")
        out[dst + "mlp.gate_proj.weight"], out[dst + "mlp.up_proj.weight"] = fc1[:ffn], fc1[ffn:]
        out[dst + "mlp.down_proj.weight"] = take(src + "mlp.linear_fc2.weight")
    out["model.norm.weight"] = take("decoder.final_layernorm.weight")
    if "output_layer.weight" in weights:
        out["lm_head.weight"] = take("output_layer.weight")[:vocab_size]
    if weights:
        raise ValueError(f"weights without a Llama counterpart: {', '.join(sorted(weights)[:5])}")
    return {name: tensor.detach().to(torch.float32).contiguous().clone() for name, tensor in out.items()}


def check_against_transformers(config: dict[str, Any], weights: Mapping[str, torch.Tensor]) -> None:
    """Every parameter LlamaForCausalLM declares is there with its shape, and nothing else."""
    from transformers import LlamaConfig, LlamaForCausalLM

    kwargs = {k: v for k, v in config.items() if k not in ("architectures", "model_type", "rope_theta", "torch_dtype")}
    with torch.device("meta"):
        reference = LlamaForCausalLM(LlamaConfig(**kwargs))
    expected = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    if config["tie_word_embeddings"]:
        expected.pop("lm_head.weight", None)
    ours = {k: tuple(v.shape) for k, v in weights.items()}
    if ours != expected:
        wrong = sorted(set(ours.items()) ^ set(expected.items()))[:4]
        raise ValueError(f"converted weights do not match LlamaForCausalLM: {wrong}")


def load_megatron(checkpoint: Path, architecture: Mapping[str, Any], vocab_size: int):
    """The GPTModel of ``architecture`` on the CPU in fp32 with the checkpoint's weights.

    Needs torch.distributed and Megatron's model parallel state initialised (tensor parallel 1).
    """
    from nemotron.train import checkpoint as checkpoints
    from nemotron.train.models import build_model

    model = build_model(dict(architecture), vocab_size, 1, cuda=False, bf16=False)
    checkpoints.load_model(Path(checkpoint), model)
    model.eval()
    return model


def export(checkpoint: Path, architecture: Mapping[str, Any], vocab_size: int, out: Path,
           token_ids: Mapping[str, int | None]) -> dict[str, Any]:
    """Write config.json and model.safetensors (sharded above 5 GB) of the checkpoint into ``out``."""
    from huggingface_hub import save_torch_state_dict

    problems = incompatibilities(architecture)
    if problems:
        raise ValueError(f"this model is not a {hf_architecture(architecture)}: {'; '.join(problems)}")
    model = load_megatron(checkpoint, architecture, vocab_size)
    convert = _nemotron_h if architecture.get("architecture") == "hybrid" else _llama
    config, weights = convert(model, architecture, vocab_size, token_ids)
    out.mkdir(parents=True, exist_ok=True)
    save_torch_state_dict(weights, out, metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (out / "generation_config.json").write_text(json.dumps(generation_config(config, token_ids), indent=2) + "\n",
                                                encoding="utf-8")
    umask = os.umask(0)
    os.umask(umask)
    for file in out.iterdir():  # the safetensors writer creates its files private (0600)
        file.chmod(0o666 & ~umask)
    return {
        "config": config,
        "parameters": sum(t.numel() for t in weights.values()),
        "padded_vocab_size": int(model.state_dict()["embedding.word_embeddings.weight"].shape[0]),
    }


def _llama(model, architecture: Mapping[str, Any], vocab_size: int,
           token_ids: Mapping[str, int | None]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    weights = convert_state_dict(model.state_dict(), architecture, vocab_size)
    config = hf_config(architecture, vocab_size, rms_norm_eps=float(model.config.layernorm_epsilon),
                       tied="lm_head.weight" not in weights, token_ids=token_ids)
    if int(model.config.kv_channels) != config["head_dim"]:
        raise ValueError(f"kv_channels {model.config.kv_channels} != head_dim {config['head_dim']}")
    check_against_transformers(config, weights)
    return config, weights


def _nemotron_h(model, architecture: Mapping[str, Any], vocab_size: int,
                token_ids: Mapping[str, int | None]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from nemotron.train import hf_nemotron_h

    weights = hf_nemotron_h.convert_state_dict(model.state_dict(), architecture, vocab_size)
    config = hf_nemotron_h.hf_config(architecture, vocab_size, token_ids=token_ids)
    hf_nemotron_h.check_against_transformers(config, weights)
    return config, weights


def main(argv: list[str]) -> int:
    """``JOB.json``: checkpoint, architecture, vocab_size, token_ids, out, result."""
    from nemo_runspec.errors import run_job_file
    from nemo_runspec.slurm.rendezvous import single_process_env

    from nemo_runspec.quiet import quiet_third_party
    from nemotron.train.megatron_warnings import silence_megatron_warnings

    silence_megatron_warnings()
    quiet_third_party()
    for key, value in single_process_env().items():  # started by hand rather than by run_module
        os.environ.setdefault(key, value)
    return run_job_file(argv, _run_job)


def _run_job(job: dict[str, Any]) -> None:
    from nemo_runspec import atomic
    from nemotron.train import distributed

    distributed.initialize(1, int(job.get("seed", 1234)), cuda=False)
    try:
        result = export(Path(job["checkpoint"]), job["architecture"], int(job["vocab_size"]), Path(job["out"]),
                        job.get("token_ids") or {})
    finally:
        distributed.shutdown()
    atomic.write_json(Path(job["result"]), result)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
