"""Analytic parameter counts for the model configs in ``conf/model/``.

``count_parameters(model_cfg, vocab_size)`` computes, from the config alone (no torch, no
Megatron import, nothing is allocated), how many parameters Megatron-Core 0.16.1 creates for

* ``architecture: gpt`` (the default when the key is absent): ``GPTModel`` built from
  ``get_gpt_layer_local_spec`` / ``get_gpt_layer_with_transformer_engine_spec``;
* ``architecture: hybrid``: ``MambaModel`` built from ``mamba_stack_spec``
  (``megatron/core/models/mamba/mamba_layer_specs.py``), one layer per character of
  ``hybrid_override_pattern``: ``M`` Mamba-2 mixer, ``*`` self-attention, ``-`` dense MLP,
  ``E`` mixture of experts.

Counts are for the whole model (tensor/pipeline/expert parallelism only split it), and they
follow the module shapes in Megatron-Core:

* embedding ``[V_pad, h]`` (``LanguageModelEmbedding``), plus ``[max_seq, h]`` for
  ``position_embedding_type: learned_absolute``; rope / none have no parameters;
* output layer ``[V_pad, h]`` unless tied (``untie_embeddings_and_output_weights: false``);
* attention: ``linear_qkv [(n_q + 2 n_kv) d_head, h]``, ``linear_proj [h, n_q d_head]``,
  optional ``q_layernorm``/``k_layernorm`` of size ``d_head``;
* dense MLP: ``fc1 [ffn * (2 if gated), h]``, ``fc2 [h, ffn]``;
* Mamba-2 (``MambaMixer``): ``in_proj [2 d_inner + 2 G N + H_m, h]`` (z, x, B, C, dt),
  depthwise ``conv1d`` over ``d_inner + 2 G N`` channels (kernel ``d_conv``, with bias),
  ``dt_bias``, ``A_log``, ``D`` (``H_m`` each), gated RMSNorm over ``d_inner``,
  ``out_proj [h, d_inner]``; no linear biases (MambaMixer asserts ``bias=False``);
* MoE (``MoELayer``): router ``[E, h]`` (+ ``[E]`` bias if ``add_bias_linear``; the
  sigmoid router's ``expert_bias`` is a buffer, not a parameter), ``E`` routed experts each
  ``fc1 [moe_ffn * (2 if gated), d_in]``, ``fc2 [d_in, moe_ffn]`` where ``d_in`` is
  ``moe_latent_size`` if set (LatentMoE, then two dense projections ``h -> latent -> h``)
  else ``h``; an optional shared expert with ``moe_shared_expert_intermediate_size`` (and a
  ``[1, h]`` gate if ``moe_shared_expert_gate``);
* norms: every pre-norm (``normalization: RMSNorm`` has a weight, ``LayerNorm`` weight and
  bias), the final norm, and the Mamba mixer's gated RMSNorm (weight over ``d_inner``).
  With Transformer Engine specs the pre-norm is fused into the next linear layer
  (``layer_norm_weight``); the count is the same.
* multi-token prediction (``mtp_num_layers``): per MTP block ``enorm``, ``hnorm``,
  ``eh_proj [h, 2h]`` (no bias), the block's layers (``mtp_hybrid_override_pattern`` for
  hybrid models, one transformer layer for GPT) and a final norm; embedding and output
  layer are shared with the main model.

Keys a config leaves out take the defaults of this repo's builder (``nemotron/train/models.py``):
``activation: swiglu``, ``normalization: RMSNorm``, ``add_bias_linear: false``,
``untie_embeddings_and_output_weights: true``, ``position_embedding_type: rope`` (``none`` for
hybrid, as in ``MambaModel``), ``num_query_groups = num_attention_heads``,
``kv_channels = hidden_size / num_attention_heads``, ``make_vocab_size_divisible_by: 128``;
Mamba and MoE keys default as in Megatron-Core's ``TransformerConfig`` / ``MambaMixer``.

``active`` is the number of parameters used to predict one next token by the main model:
``total`` minus the routed experts a token does not visit (``E - topk`` per MoE layer) and
minus the MTP blocks. It includes the input embedding and the output layer, so for a dense
model ``active == total``. NVIDIA quotes Nemotron 3 Nano as "3.2B active (3.6B with
embeddings)": 3.6B is ``active``, 3.2B is ``active - breakdown["embedding"]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["ParameterCount", "count_parameters", "format_count", "padded_vocab_size"]

BREAKDOWN_KEYS = (
    "embedding",
    "output",
    "attention",
    "mlp",
    "mamba",
    "moe_experts",
    "moe_shared",
    "moe_latent",
    "router",
    "norms",
    "mtp",
)

GATED_ACTIVATIONS = {"swiglu", "geglu", "reglu"}
NON_GATED_ACTIVATIONS = {"gelu", "relu", "squared_relu", "silu", "quick_gelu"}
LAYER_SYMBOLS = {"M": "mamba", "*": "attention", "-": "mlp", "E": "moe"}


@dataclass(frozen=True)
class ParameterCount:
    """Parameter count of one model config.

    ``breakdown`` always holds every key of ``BREAKDOWN_KEYS`` and sums to ``total``.
    """

    total: int
    active: int
    breakdown: dict[str, int] = field(default_factory=dict)
    padded_vocab_size: int = 0

    def summary(self) -> str:
        parts = ", ".join(f"{k}={format_count(v)}" for k, v in self.breakdown.items() if v)
        return f"total={format_count(self.total)} active={format_count(self.active)} ({parts})"


def format_count(n: int | float) -> str:
    """Human-readable count: 354561 -> '354.6K', 31_577_940_288 -> '31.58B'.

    Below a thousand the number is printed as is; K and M get one decimal, B and T two.
    """
    n = int(n)
    sign = "-" if n < 0 else ""
    a = abs(n)
    for scale, suffix, digits in ((10**12, "T", 2), (10**9, "B", 2), (10**6, "M", 1), (10**3, "K", 1)):
        if a >= scale:
            return f"{sign}{a / scale:.{digits}f}{suffix}"
    return f"{sign}{a}"


def padded_vocab_size(vocab_size: int, divisible_by: int = 128, tensor_model_parallel_size: int = 1) -> int:
    """Megatron-LM's ``_vocab_size_with_padding``: round up to ``divisible_by * tp``."""
    if vocab_size <= 0:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    multiple = max(1, int(divisible_by)) * max(1, int(tensor_model_parallel_size))
    return -(-int(vocab_size) // multiple) * multiple


# ---------------------------------------------------------------------------------------------
# config helpers


def _get(cfg: Mapping[str, Any], key: str, default: Any = None) -> Any:
    value = cfg.get(key, default) if hasattr(cfg, "get") else default
    return default if value is None else value


def _req_int(cfg: Mapping[str, Any], key: str) -> int:
    value = _get(cfg, key)
    if value is None:
        raise ValueError(f"model config needs '{key}'")
    return int(value)


def _is_gated(cfg: Mapping[str, Any]) -> bool:
    explicit = cfg.get("gated_linear_unit") if hasattr(cfg, "get") else None
    if explicit is not None:
        return bool(explicit)
    activation = str(_get(cfg, "activation", "swiglu")).lower()
    if activation in GATED_ACTIVATIONS:
        return True
    if activation in NON_GATED_ACTIVATIONS:
        return False
    raise ValueError(
        f"unknown activation '{activation}': use one of "
        f"{sorted(GATED_ACTIVATIONS | NON_GATED_ACTIVATIONS)} or set gated_linear_unit"
    )


def _norm_size(cfg: Mapping[str, Any], width: int) -> int:
    normalization = str(_get(cfg, "normalization", "RMSNorm"))
    if normalization == "RMSNorm":
        return width
    if normalization == "LayerNorm":
        return 2 * width
    raise ValueError(f"unknown normalization '{normalization}' (RMSNorm or LayerNorm)")


def _linear(n_in: int, n_out: int, bias: bool) -> int:
    return n_in * n_out + (n_out if bias else 0)


class _Dims:
    """Every width the formulas need, read once from the config."""

    def __init__(self, cfg: Mapping[str, Any]):
        self.h = _req_int(cfg, "hidden_size")
        self.bias = bool(_get(cfg, "add_bias_linear", False))
        self.qkv_bias = self.bias or bool(_get(cfg, "add_qkv_bias", False))
        self.gated = _is_gated(cfg)
        self.qk_layernorm = bool(_get(cfg, "qk_layernorm", False))
        self.ffn = _get(cfg, "ffn_hidden_size")
        self.cfg = cfg

        self.heads = _get(cfg, "num_attention_heads")
        if self.heads is not None:
            self.heads = int(self.heads)
            self.groups = int(_get(cfg, "num_query_groups", self.heads))
            kv = _get(cfg, "kv_channels")
            if kv is None:
                if self.h % self.heads:
                    raise ValueError("hidden_size must be divisible by num_attention_heads (or set kv_channels)")
                kv = self.h // self.heads
            self.kv_channels = int(kv)
            if self.heads % self.groups:
                raise ValueError("num_attention_heads must be divisible by num_query_groups")

    def norm(self, width: int | None = None) -> int:
        return _norm_size(self.cfg, self.h if width is None else width)

    # -- blocks; each returns {component: count} -----------------------------------------------

    def attention(self) -> dict[str, int]:
        if self.heads is None:
            raise ValueError("attention layers need 'num_attention_heads'")
        q = self.heads * self.kv_channels
        qkv_out = (self.heads + 2 * self.groups) * self.kv_channels
        attn = _linear(self.h, qkv_out, self.qkv_bias) + _linear(q, self.h, self.bias)
        norms = self.norm()  # input_layernorm (fused into linear_qkv with TE)
        if self.qk_layernorm:
            norms += 2 * self.norm(self.kv_channels)
        return {"attention": attn, "norms": norms}

    def dense_mlp(self, ffn: int, n_in: int | None = None, bias: bool | None = None) -> int:
        n_in = self.h if n_in is None else n_in
        bias = self.bias if bias is None else bias
        return _linear(n_in, ffn * (2 if self.gated else 1), bias) + _linear(ffn, n_in, bias)

    def mlp(self) -> dict[str, int]:
        if self.ffn is None:
            raise ValueError("dense MLP layers need 'ffn_hidden_size'")
        return {"mlp": self.dense_mlp(int(self.ffn)), "norms": self.norm()}

    def moe(self) -> tuple[dict[str, int], int]:
        """(component counts, parameters of the routed experts a token does NOT visit)."""
        cfg = self.cfg
        experts = _req_int(cfg, "num_moe_experts")
        topk = int(_get(cfg, "moe_router_topk", 2))
        if not 0 < topk <= experts:
            raise ValueError(f"moe_router_topk={topk} must be in 1..num_moe_experts={experts}")
        moe_ffn = _get(cfg, "moe_ffn_hidden_size", self.ffn)
        if moe_ffn is None:
            raise ValueError("MoE layers need 'moe_ffn_hidden_size' (or 'ffn_hidden_size')")
        latent = _get(cfg, "moe_latent_size")
        d_in = int(latent) if latent else self.h
        per_expert = self.dense_mlp(int(moe_ffn), n_in=d_in)
        out = {
            "moe_experts": experts * per_expert,
            "router": _linear(self.h, experts, self.bias),
            "moe_latent": 2 * _linear(self.h, d_in, self.bias) if latent else 0,
            "moe_shared": 0,
            "norms": self.norm(),  # pre_mlp_layernorm
        }
        shared = _get(cfg, "moe_shared_expert_intermediate_size")
        if shared:
            out["moe_shared"] = self.dense_mlp(int(shared))
            if bool(_get(cfg, "moe_shared_expert_gate", False)):
                out["moe_shared"] += self.h
        return out, (experts - topk) * per_expert

    def mamba(self) -> dict[str, int]:
        cfg = self.cfg
        state = int(_get(cfg, "mamba_state_dim", 128))
        head_dim = int(_get(cfg, "mamba_head_dim", 64))
        groups = int(_get(cfg, "mamba_num_groups", 8))
        d_conv = int(_get(cfg, "mamba_conv_kernel", 4))
        n_heads = _get(cfg, "mamba_num_heads")
        if n_heads is None:
            d_inner = int(_get(cfg, "mamba_expand", 2)) * self.h
            if d_inner % head_dim:
                raise ValueError("mamba_expand * hidden_size must be divisible by mamba_head_dim")
            n_heads = d_inner // head_dim
        n_heads = int(n_heads)
        d_inner = n_heads * head_dim
        if n_heads % groups:
            raise ValueError("mamba_num_heads must be divisible by mamba_num_groups")
        in_proj = self.h * (2 * d_inner + 2 * groups * state + n_heads)  # z, x, B, C, dt
        conv_dim = d_inner + 2 * groups * state  # x, B, C
        conv1d = conv_dim * d_conv + conv_dim  # depthwise weight [conv_dim, 1, d_conv] + bias
        ssm = 3 * n_heads  # dt_bias, A_log, D (D_has_hdim=False)
        out_proj = d_inner * self.h
        # pre-norm (fused into in_proj with TE) + gated RMSNorm inside the mixer (weight only)
        return {"mamba": in_proj + conv1d + ssm + out_proj, "norms": self.norm() + d_inner}


def _add(total: dict[str, int], part: Mapping[str, int], times: int = 1) -> None:
    for key, value in part.items():
        total[key] = total.get(key, 0) + value * times


def _layer(d: _Dims, kind: str) -> tuple[dict[str, int], int]:
    """One layer: (components, inactive routed-expert parameters)."""
    if kind == "mamba":
        return d.mamba(), 0
    if kind == "attention":
        return d.attention(), 0
    if kind == "mlp":
        return d.mlp(), 0
    if kind == "moe":
        return d.moe()
    raise AssertionError(kind)


def _layer_kinds(cfg: Mapping[str, Any], architecture: str, num_layers: int) -> list[list[str]]:
    """Per main-model layer, the sub-blocks it holds."""
    if architecture == "gpt":
        # TransformerLayer = self-attention + (dense MLP or MoE).
        ffn_kind = "moe" if _get(cfg, "num_moe_experts") else "mlp"
        freq = _get(cfg, "moe_layer_freq", 1)
        kinds = []
        for i in range(num_layers):
            if ffn_kind == "moe":
                # moe_layer_freq: every n-th layer (int) or a per-layer 0/1 list, as in Megatron
                is_moe = i % int(freq) == 0 if isinstance(freq, (int, str)) else bool(list(freq)[i])
                kinds.append(["attention", "moe" if is_moe else "mlp"])
            else:
                kinds.append(["attention", "mlp"])
        return kinds
    pattern = _get(cfg, "hybrid_override_pattern")
    if not pattern:
        raise ValueError("architecture 'hybrid' needs 'hybrid_override_pattern' (e.g. 'MEM*EME')")
    pattern = str(pattern)
    bad = sorted(set(pattern) - set(LAYER_SYMBOLS))
    if bad:
        raise ValueError(f"hybrid_override_pattern has unknown symbols {bad}; use {sorted(LAYER_SYMBOLS)}")
    if len(pattern) != num_layers:
        raise ValueError(f"hybrid_override_pattern has {len(pattern)} layers but num_layers is {num_layers}")
    return [[LAYER_SYMBOLS[c]] for c in pattern]


def count_parameters(
    model: Mapping[str, Any],
    vocab_size: int,
    *,
    tensor_model_parallel_size: int = 1,
) -> ParameterCount:
    """Count the parameters of the model described by ``model`` (a ``conf/model/*.yaml``).

    ``vocab_size`` is the tokenizer's vocabulary; it is padded up to a multiple of
    ``make_vocab_size_divisible_by`` (default 128) times ``tensor_model_parallel_size``, as
    Megatron-LM does before building the model.
    """
    architecture = str(_get(model, "architecture", "gpt")).lower()
    if architecture not in ("gpt", "hybrid"):
        raise ValueError(f"unknown architecture '{architecture}' (gpt or hybrid)")
    d = _Dims(model)
    num_layers = _req_int(model, "num_layers")
    vocab = padded_vocab_size(
        vocab_size, int(_get(model, "make_vocab_size_divisible_by", 128)), tensor_model_parallel_size
    )

    parts: dict[str, int] = {key: 0 for key in BREAKDOWN_KEYS}
    inactive = 0

    default_pos = "rope" if architecture == "gpt" else "none"
    position = str(_get(model, "position_embedding_type", default_pos))
    parts["embedding"] = vocab * d.h
    if position == "learned_absolute":
        max_pos = _get(model, "max_position_embeddings", _get(model, "seq_length"))
        if max_pos is None:
            raise ValueError("learned_absolute position embeddings need 'max_position_embeddings' or 'seq_length'")
        parts["embedding"] += int(max_pos) * d.h
    elif position not in ("rope", "none", "yarn", "mrope"):
        raise ValueError(f"unknown position_embedding_type '{position}'")
    if bool(_get(model, "untie_embeddings_and_output_weights", True)):
        parts["output"] = vocab * d.h  # ColumnParallelLinear(bias=False)

    for kinds in _layer_kinds(model, architecture, num_layers):
        for kind in kinds:
            block, off = _layer(d, kind)
            _add(parts, block)
            inactive += off
    parts["norms"] += d.norm()  # final_layernorm / final_norm

    mtp_layers = int(_get(model, "mtp_num_layers", 0))
    if mtp_layers:
        mtp: dict[str, int] = {}
        if architecture == "hybrid":
            mtp_pattern = str(_get(model, "mtp_hybrid_override_pattern", "*"))
            inner = [LAYER_SYMBOLS[c] for c in mtp_pattern]
        else:
            inner = _layer_kinds(model, "gpt", num_layers)[-1]  # copies the last decoder layer
        for kind in inner:
            _add(mtp, _layer(d, kind)[0])
        per_block = sum(mtp.values()) + 3 * d.norm() + 2 * d.h * d.h  # enorm, hnorm, final norm; eh_proj
        parts["mtp"] = mtp_layers * per_block

    total = sum(parts.values())
    active = total - inactive - parts["mtp"]
    return ParameterCount(total=total, active=active, breakdown=parts, padded_vocab_size=vocab)
