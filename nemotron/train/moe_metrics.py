"""What a training step of a mixture-of-experts model records beside its loss: the routers'
auxiliary (load-balancing) losses (``moe_<name>``), the share of tokens each expert of each MoE
layer got (``expert_load``) and the busiest expert's share over an even one (``expert_load_max``).

The aux losses come from Megatron-Core's own tracker (``moe_utils``), which its routers fill;
the shares from a hook on each router's output (its routing map). Both are summed over the
pipeline stages (each holds its own layers) and reduced over the ranks of a stage as Megatron's
``reduce_aux_losses_tracker_across_ranks`` does, with plain all-reduces: it averages with
``ReduceOp.AVG``, which gloo does not have.
"""

from __future__ import annotations

from typing import Any

import torch


class MoEMetrics:
    """Installed on a rank's model chunks; :meth:`read` after each training step."""

    def __init__(self, chunks: list, num_layers: int, num_experts: int) -> None:
        from megatron.core.transformer.moe.router import TopKRouter

        from nemotron.train.module_wrappers import unwrap

        self.routed = torch.zeros(num_layers, num_experts, dtype=torch.float64)
        self.moe_layers: set[int] = set()  # this rank's
        self._all_layers: list[int] | None = None  # every stage's, found at the first read
        for chunk in chunks:
            for module in unwrap(chunk).modules():
                if isinstance(module, TopKRouter):
                    module.register_forward_hook(self._count)
                    self.moe_layers.add(module.layer_number)

    def _count(self, router, inputs, output) -> None:
        if router.training and torch.is_grad_enabled():
            _, routing_map = output
            self.routed[router.layer_number - 1] += routing_map.sum(dim=0).double().cpu()

    def start_step(self) -> None:
        from megatron.core.transformer.moe.moe_utils import clear_aux_losses_tracker

        self.routed.zero_()
        clear_aux_losses_tracker()

    def read(self, micro_batches: int, device: torch.device) -> dict[str, Any]:
        """The step's aux losses (mean over MoE layers and micro-batches) and, per MoE layer in
        order, each expert's share of the routed tokens; the same on every rank."""
        from megatron.core.transformer.moe.moe_utils import get_moe_layer_wise_logging_tracker

        tracker = get_moe_layer_wise_logging_tracker()
        names = sorted(tracker)
        routed = _summed(self.routed.to(device)) / _ranks_per_stage()
        losses = [_reduced(tracker[name], device) for name in names]
        if self._all_layers is None:
            self._all_layers = sorted(int(i) + 1 for i in torch.nonzero(_summed(self._mine(device))).flatten())
        record: dict[str, Any] = {}
        for name, values in zip(names, losses):
            record[f"moe_{name}"] = round(float(values.sum()) / (len(self._all_layers) * micro_batches), 6)
        # Each rank counted its own tokens (a slice of the sequence under sequence parallelism,
        # all of them otherwise): shares come out the same either way.
        shares = [routed[layer - 1] / routed[layer - 1].sum().clamp(min=1) for layer in self._all_layers]
        record["expert_load"] = [[round(float(share), 4) for share in layer] for layer in shares]
        # The busiest expert's share over an even one (1.0: perfectly balanced), worst layer.
        record["expert_load_max"] = round(max(float(layer.max()) * len(layer) for layer in shares), 4)
        return record

    def _mine(self, device: torch.device) -> torch.Tensor:
        flags = torch.zeros(self.routed.shape[0], dtype=torch.float64, device=device)
        for layer in self.moe_layers:
            flags[layer - 1] = 1
        return flags


def _reduced(entry: dict[str, Any], device: torch.device) -> torch.Tensor:
    """One tracked loss per layer, reduced as Megatron-Core's tracker reduces it: summed over
    the pipeline stages and over its ``reduce_group`` (the ranks that each saw part of the
    tokens), averaged over the data-parallel ranks unless that group holds them, and over its
    ``avg_group``; averages as sums over the group's size (gloo has no AVG)."""
    from megatron.core import parallel_state

    values = entry["values"].detach().to(device, torch.float64)
    if not (torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1):
        return values.cpu()
    torch.distributed.all_reduce(values, group=parallel_state.get_pipeline_model_parallel_group())
    if entry.get("reduce_group") is not None:
        torch.distributed.all_reduce(values, group=entry["reduce_group"])
        if not entry.get("reduce_group_has_dp", False):
            _average(values, parallel_state.get_data_parallel_group())
    if entry.get("avg_group") is not None:
        _average(values, entry["avg_group"])
    return values.cpu()


def _average(values: torch.Tensor, group) -> None:
    torch.distributed.all_reduce(values, group=group)
    values /= torch.distributed.get_world_size(group)


def _summed(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over all ranks, on the CPU."""
    if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
        torch.distributed.all_reduce(tensor)
    return tensor.cpu()


def _ranks_per_stage() -> int:
    """How many ranks hold each layer (all but the pipeline's split)."""
    from megatron.core import parallel_state

    if not (torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1):
        return 1
    return torch.distributed.get_world_size() // parallel_state.get_pipeline_model_parallel_world_size()
