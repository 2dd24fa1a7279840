"""torch.distributed rendezvous settings: a free port, and what processes started by ``srun`` need.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT itself; under srun each
task has SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID instead, and the launching process picks
the rendezvous address (the first node of the allocation, where rank 0 runs) and port. A single
process started by a step gets the same variables from its parent, with a port from
:func:`free_port`.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Mapping

SRUN_ARGS_VAR = "NEMOTRON_SRUN_ARGS"  # JSON list: the profile's container flags for training's srun


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on now (for MASTER_PORT)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def single_process_env() -> dict[str, str]:
    """The torch.distributed variables of a world of one process on this machine."""
    return {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(free_port())}


def allocation_tasks(environ: Mapping[str, str] = os.environ) -> int:
    """How many tasks the enclosing SLURM allocation holds (1 outside SLURM)."""
    if "SLURM_JOB_ID" not in environ:
        return 1
    return int(environ.get("SLURM_NTASKS") or environ.get("SLURM_NPROCS") or 1)


def first_node(environ: Mapping[str, str] = os.environ) -> str:
    """The allocation's first host name (rank 0 runs there)."""
    nodelist = environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST")
    if not nodelist:
        return "127.0.0.1"
    shown = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True)
    hosts = shown.stdout.split()
    return hosts[0] if shown.returncode == 0 and hosts else nodelist.split(",")[0]


def torch_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """RANK, WORLD_SIZE and LOCAL_RANK of an srun task; empty when torchrun already set them
    or the process is not an srun task."""
    if "RANK" in environ or "SLURM_PROCID" not in environ or "SLURM_STEP_ID" not in environ:
        return {}
    return {
        "RANK": environ["SLURM_PROCID"],
        "WORLD_SIZE": environ.get("SLURM_STEP_NUM_TASKS") or environ.get("SLURM_NTASKS", "1"),
        "LOCAL_RANK": environ.get("SLURM_LOCALID", "0"),
    }


def srun_args(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The flags every srun of the job adds (pyxis' container image and mounts), set at submission."""
    import json

    return list(json.loads(environ.get(SRUN_ARGS_VAR) or "[]"))
