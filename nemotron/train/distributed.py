"""Process groups, model parallelism and seeds for one training process (one rank).

Rank, world size and rendezvous come from the environment torchrun or SLURM's srun sets
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). CPU runs use gloo and the CPU
compatibility patches; GPU runs use NCCL on the local device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Topology:
    rank: int
    world_size: int
    tp_rank: int
    tp_size: int
    dp_rank: int
    dp_size: int
    device: torch.device
    pp_rank: int = 0
    pp_size: int = 1
    vpp_size: int | None = None  # model chunks per pipeline rank (interleaved schedule)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def layout(self) -> dict[str, int | None]:
        """What a checkpoint records of the layout it was written in."""
        return {"tensor_parallel": self.tp_size, "pipeline_parallel": self.pp_size,
                "virtual_pipeline_parallel": self.vpp_size, "data_parallel": self.dp_size}


def use_cuda(requested: str) -> bool:
    """``device`` setting: ``auto`` (CUDA when available), ``cpu`` or ``cuda``."""
    if requested == "cpu":
        return False
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but no CUDA device is visible")
    return torch.cuda.is_available()


def initialize(tensor_parallel: int, seed: int, cuda: bool, pipeline_parallel: int = 1,
               virtual_pipeline_parallel: int | None = None, context_parallel: int = 1,
               expert_parallel: int = 1) -> Topology:
    from megatron.core import parallel_state

    from nemotron.train import cpu_compat

    if not cuda:
        cpu_compat.apply()
    cpu_compat.apply_without_fused_adam()
    cpu_compat.apply_without_transformer_engine()
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    model_parallel = tensor_parallel * pipeline_parallel * context_parallel
    if world % model_parallel:
        raise RuntimeError(f"world size {world} is not a multiple of tensor x pipeline x context parallel "
                           f"= {model_parallel}")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    parallel_state.initialize_model_parallel(
        tensor_model_parallel_size=tensor_parallel, pipeline_model_parallel_size=pipeline_parallel,
        virtual_pipeline_model_parallel_size=virtual_pipeline_parallel, context_parallel_size=context_parallel,
        expert_model_parallel_size=expert_parallel)
    tp_rank = parallel_state.get_tensor_model_parallel_rank()
    if cuda:
        from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

        torch.manual_seed(seed)
        model_parallel_cuda_manual_seed(seed)
    else:
        cpu_compat.manual_seed(seed, tp_rank)
    return Topology(
        rank=rank, world_size=world, tp_rank=tp_rank, tp_size=tensor_parallel,
        dp_rank=parallel_state.get_data_parallel_rank(), dp_size=parallel_state.get_data_parallel_world_size(),
        device=torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu"),
        pp_rank=parallel_state.get_pipeline_model_parallel_rank(), pp_size=pipeline_parallel,
        vpp_size=virtual_pipeline_parallel,
    )


def shutdown() -> None:
    from megatron.core import parallel_state

    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        parallel_state.destroy_model_parallel()
        torch.distributed.destroy_process_group()


def rng_state() -> dict[str, torch.Tensor]:
    """Every RNG state a rank uses, to make a resumed run continue bit for bit."""
    from megatron.core.tensor_parallel import random as tp_random

    states = {"torch": torch.get_rng_state()}
    for name, state in tp_random.get_cuda_rng_tracker().get_states().items():
        states[f"tracker/{name}"] = state
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def set_rng_state(states: dict[str, torch.Tensor]) -> None:
    from megatron.core.tensor_parallel import random as tp_random

    torch.set_rng_state(states["torch"])
    tracker = {k.split("/", 1)[1]: v for k, v in states.items() if k.startswith("tracker/")}
    tp_random.get_cuda_rng_tracker().set_states(tracker)
    if "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"])
