"""The model inside Megatron-Core's wrappers (``DistributedDataParallel``, ``Float16Module``)."""

from __future__ import annotations


def unwrap(model):
    """The model inside Megatron-Core's DDP and Float16Module wrappers (or the model itself)."""
    while hasattr(model, "module"):
        model = model.module
    return model
