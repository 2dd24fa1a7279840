"""Facts about model formats that the driver process checks without torch: what a complete
Megatron checkpoint directory holds, and which architectures export to a LlamaForCausalLM."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

LATEST = "latest"  # the checkpoints folder's pointer file to the newest complete iteration
TRAINER_FILE = "trainer.json"  # an iteration's trainer state: step, samples, layout, architecture

# The model settings a LlamaForCausalLM computes exactly (also the model schema's defaults when
# a setting is not recorded); anything else is refused.
LLAMA_COMPATIBLE = {
    "architecture": "gpt",
    "normalization": "RMSNorm",
    "activation": "swiglu",
    "position_embedding_type": "rope",
    "add_bias_linear": False,
    "add_qkv_bias": False,
    "qk_layernorm": False,
}


def missing_checkpoint_files(checkpoint: Path) -> list[Path]:
    """The files a complete checkpoint iteration has and ``checkpoint`` lacks."""
    return [p for p in (checkpoint / TRAINER_FILE, checkpoint / "model" / "metadata.json") if not p.is_file()]


def incompatibilities(architecture: Mapping[str, Any]) -> list[str]:
    """The recorded settings that keep ``architecture`` from being a LlamaForCausalLM."""
    problems = []
    if architecture.get("requires_gpu"):
        problems.append(f"it is a GPU-only architecture ({architecture.get('gpu_only_reason') or 'hybrid/MoE'})")
    for key, wanted in LLAMA_COMPATIBLE.items():
        value = architecture.get(key, wanted)
        if value != wanted:
            problems.append(f"{key}={value!r} (Llama: {wanted!r})")
    return problems
