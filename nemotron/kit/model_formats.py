"""Facts about model formats that the driver process checks without torch: what a complete
Megatron checkpoint directory holds, and which architectures export to Hugging Face: a dense
GPT to ``LlamaForCausalLM``, a hybrid (Nemotron-H) to ``NemotronHForCausalLM``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nemotron.schemas.model import ModelConfig

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
# The same for NemotronHForCausalLM (transformers' models/nemotron_h), besides the activation,
# the norm epsilon and the MoE settings checked in _nemotron_h_incompatibilities.
NEMOTRON_H_COMPATIBLE = {
    "normalization": "RMSNorm",
    "position_embedding_type": "none",
    "add_bias_linear": False,
    "add_qkv_bias": False,
    "qk_layernorm": False,
}
# Megatron-Core's name of an activation -> NemotronH's mlp_hidden_act. transformers would take
# other elementwise ones, but vLLM's NemotronH (what NeMo-RL generates with) hard-codes relu2
# in its dense and shared-expert MLPs.
NEMOTRON_H_ACTIVATIONS = {"squared_relu": "relu2"}
MAMBA_NORM_EPS = 1e-5


def missing_checkpoint_files(checkpoint: Path) -> list[Path]:
    """The files a complete checkpoint iteration has and ``checkpoint`` lacks."""
    return [p for p in (checkpoint / TRAINER_FILE, checkpoint / "model" / "metadata.json") if not p.is_file()]


def hf_architecture(architecture: Mapping[str, Any]) -> str:
    """The transformers class an export of ``architecture`` is (whether or not it can be)."""
    return "NemotronHForCausalLM" if architecture.get("architecture") == "hybrid" else "LlamaForCausalLM"


def incompatibilities(architecture: Mapping[str, Any]) -> list[str]:
    """The recorded settings that keep ``architecture`` from being its ``hf_architecture``."""
    problems = []
    if architecture.get("requires_gpu"):  # the export rebuilds the model on the CPU
        problems.append(f"it is a GPU-only architecture ({architecture.get('gpu_only_reason') or 'hybrid/MoE'})")
    if architecture.get("architecture") == "hybrid":
        return problems + _nemotron_h_incompatibilities(architecture)
    for key, wanted in LLAMA_COMPATIBLE.items():
        value = architecture.get(key, wanted)
        if value != wanted:
            problems.append(f"{key}={value!r} (Llama: {wanted!r})")
    return problems


def _nemotron_h_incompatibilities(architecture: Mapping[str, Any]) -> list[str]:
    """What transformers' NemotronH cannot compute the way Megatron-Core's hybrid model does
    (its modeling file: no position embedding, bias-free linears, squared ReLU in MLPs and
    experts, a sigmoid router that always adds a shared expert)."""
    def setting(key: str) -> Any:  # an unrecorded setting is the model schema's default
        return architecture[key] if key in architecture else ModelConfig.model_fields[key].default

    problems = [f"{key}={setting(key)!r} (NemotronH: {wanted!r})"
                for key, wanted in NEMOTRON_H_COMPATIBLE.items() if setting(key) != wanted]
    if setting("activation") not in NEMOTRON_H_ACTIVATIONS or setting("gated_linear_unit"):
        problems.append(f"activation={setting('activation')!r} (NemotronH: {', '.join(NEMOTRON_H_ACTIVATIONS)})")
    # Megatron-Core's Mamba mixer normalises its output with eps 1e-5 whatever the config says;
    # NemotronH uses layer_norm_epsilon for that norm and the layer norms alike.
    if float(setting("layernorm_epsilon")) != MAMBA_NORM_EPS:
        problems.append(f"layernorm_epsilon={setting('layernorm_epsilon')!r} (NemotronH: {MAMBA_NORM_EPS}, "
                        "the Mamba mixer's own)")
    if setting("mtp_num_layers"):
        problems.append(f"mtp_num_layers={setting('mtp_num_layers')!r} (multi-token prediction is not exported)")
    if setting("moe_latent_size"):
        problems.append(f"moe_latent_size={setting('moe_latent_size')!r} (LatentMoE is not exported)")
    if "E" in (setting("hybrid_override_pattern") or ""):
        if setting("moe_router_score_function") != "sigmoid":  # unset: Megatron-Core's softmax
            problems.append(f"moe_router_score_function={setting('moe_router_score_function')!r} (NemotronH: 'sigmoid')")
        if not setting("moe_shared_expert_intermediate_size"):
            problems.append("no shared expert (NemotronH's MoE layers always have one)")
        if setting("moe_shared_expert_gate"):
            problems.append("moe_shared_expert_gate=True (NemotronH: no gate on the shared expert)")
        if (setting("num_moe_experts") or 0) < 2:
            problems.append(f"num_moe_experts={setting('num_moe_experts')!r} (NemotronH's router ranks experts "
                            "by their two best scores: at least 2)")
    return problems
