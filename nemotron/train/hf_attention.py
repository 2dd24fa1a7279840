"""Megatron-Core's attention weights as Hugging Face models hold them: head sizes and the
fused QKV projection split into q, k and v (shared by the Llama and NemotronH exports).

Megatron's fused QKV rows are grouped per query group: for each of the ``num_query_groups``
groups, the ``heads / groups`` query heads of that group, then its key head, then its value
head, each ``head_dim`` rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def head_dim(architecture: Mapping[str, Any]) -> int:
    return int(architecture.get("kv_channels") or int(architecture["hidden_size"]) // int(architecture["num_attention_heads"]))


def query_groups(architecture: Mapping[str, Any]) -> int:
    return int(architecture.get("num_query_groups") or architecture["num_attention_heads"])


def split_qkv(weight: torch.Tensor, heads: int, groups: int, dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Megatron's fused QKV weight (rows grouped per query group) -> q, k, v projections."""
    per_group = heads // groups
    hidden = weight.shape[-1]
    if heads % groups or weight.shape[0] != (heads + 2 * groups) * dim:
        raise ValueError(f"linear_qkv has {weight.shape[0]} rows; {heads} heads in {groups} groups of "
                         f"head_dim {dim} need {(heads + 2 * groups) * dim}")
    grouped = weight.reshape(groups, per_group + 2, dim, hidden)
    q = grouped[:, :per_group].reshape(heads * dim, hidden)
    k = grouped[:, per_group].reshape(groups * dim, hidden)
    v = grouped[:, per_group + 1].reshape(groups * dim, hidden)
    return q.contiguous(), k.contiguous(), v.contiguous()
