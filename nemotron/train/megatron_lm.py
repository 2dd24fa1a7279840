"""What a Megatron-LM checkpoint says about itself: the training arguments in ``common.pt``.

Megatron-LM saves its ``argparse.Namespace`` of arguments, the iteration and the checkpoint
version in the non-sharded part of a ``torch_dist`` checkpoint. It is read with
``weights_only=True`` and Megatron-Core's own list of the classes such a file may hold
(``megatron.core.safe_globals``): nothing in the file runs. The argument names are Megatron-LM's,
which our model configs share, so the architecture maps over nearly one to one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ARCHITECTURE_SOURCE = "common.pt: the arguments Megatron-LM trained with"
_REQUIRED = ("num_layers", "hidden_size", "num_attention_heads", "seq_length")


@dataclass(frozen=True)
class SavedState:
    args: dict[str, Any] | None
    iteration: int | None


def read_common(file: Path) -> SavedState:
    """The arguments and iteration in a distributed checkpoint's ``common.pt`` (None where the
    file does not hold them); raises ValueError when it cannot be read safely."""
    import pickle

    import torch

    from nemotron.train.megatron_warnings import megatron_quietly

    with megatron_quietly():
        from megatron.core.safe_globals import SAFE_GLOBALS

    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            common = torch.load(file, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{file}: not readable with weights_only=True ({first})") from None
    if not isinstance(common, dict):
        return SavedState(None, None)
    args = common.get("args")
    iteration = common.get("iteration")
    return SavedState(vars(args) if hasattr(args, "__dict__") else None,
                      iteration if isinstance(iteration, int) and iteration >= 0 else None)


# Megatron-LM's arguments of the hybrid and MoE layers that keep their names in our model config.
_MAMBA_ARGS = ("mamba_state_dim", "mamba_head_dim", "mamba_num_heads", "mamba_num_groups")
_MOE_ARGS = ("moe_router_topk", "moe_ffn_hidden_size", "moe_shared_expert_intermediate_size",
             "moe_router_score_function", "moe_router_topk_scaling_factor", "moe_router_enable_expert_bias",
             "moe_router_load_balancing_type", "moe_aux_loss_coeff", "moe_router_dtype", "moe_grouped_gemm")


def _present(args: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: args[key] for key in keys if args.get(key) is not None}


def architecture_from_args(args: Mapping[str, Any]) -> dict[str, Any] | None:
    """Our model config for the network Megatron-LM's ``args`` describe; None when they lack
    one of the sizes."""
    if any(args.get(key) is None for key in _REQUIRED):
        return None
    hidden, heads = int(args["hidden_size"]), int(args["num_attention_heads"])
    activation = "swiglu" if args.get("swiglu") else "squared_relu" if args.get("squared_relu") else "gelu"
    architecture: dict[str, Any] = {
        "name": "megatron-lm",
        "num_layers": int(args["num_layers"]),
        "hidden_size": hidden,
        "ffn_hidden_size": int(args.get("ffn_hidden_size") or 4 * hidden),
        "num_attention_heads": heads,
        "num_query_groups": int(args["num_query_groups"]) if args.get("group_query_attention") else heads,
        "kv_channels": int(args.get("kv_channels") or hidden // heads),
        "seq_length": int(args["seq_length"]),
        "position_embedding_type": args.get("position_embedding_type") or "learned_absolute",
        "rotary_base": int(args.get("rotary_base") or 10000),
        "normalization": args.get("normalization") or "LayerNorm",
        "activation": activation,
        "add_bias_linear": bool(args.get("add_bias_linear", True)),
        "untie_embeddings_and_output_weights": bool(args.get("untie_embeddings_and_output_weights", False)),
        "init_method_std": float(args.get("init_method_std") or 0.02),
        # Megatron-LM pads the vocabulary to a multiple of this times its tensor-parallel size:
        # the embedding's shape only loads with the same padding.
        "make_vocab_size_divisible_by": int(args.get("make_vocab_size_divisible_by") or 128)
        * int(args.get("tensor_model_parallel_size") or 1),
    }
    if args.get("hybrid_override_pattern") or args.get("is_hybrid_model"):
        architecture.update(architecture="hybrid", hybrid_override_pattern=args.get("hybrid_override_pattern"),
                            **_present(args, _MAMBA_ARGS))
    if args.get("num_experts"):
        architecture.update(num_moe_experts=int(args["num_experts"]), **_present(args, _MOE_ARGS))
    return architecture
