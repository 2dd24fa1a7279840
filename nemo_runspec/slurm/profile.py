"""Execution profiles: the ``env.toml`` tables that say where a job runs.

A profile with ``executor = "slurm"`` holds what ``sbatch`` needs (partition, account, nodes,
tasks, GPUs, time, memory), the container pyxis starts each training task in, setup lines for
the batch script and environment variables; ``extends`` chains are merged by
:mod:`nemo_runspec.env`. ``executor = "local"`` runs in this process, as with no profile at all.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nemo_runspec.env import load_env
from nemo_runspec.errors import ConfigError

_TIME = re.compile(r"^(\d+-)?\d+(:\d+){0,2}$")
_MEM = re.compile(r"^\d+[KMGT]?$")
_SIGNAL = re.compile(r"^(?:SIG)?(USR1|TERM)@(\d+)$")  # what training stops on (nemo_runspec.stop_signals)


class Profile(BaseModel):
    """One execution profile. Unknown keys are errors: a typo must not silently run elsewhere."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    executor: Literal["local", "slurm"]
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    nodes: int = Field(1, ge=1)
    ntasks_per_node: int = Field(1, ge=1)
    gpus_per_node: int | None = Field(None, ge=0)
    cpus_per_task: int | None = Field(None, ge=1)
    time: str = "01:00:00"
    mem: str | None = None
    exclusive: bool = False
    container_image: str | None = None
    container_mounts: list[str] = []
    setup: list[str] = []
    env: dict[str, str] = {}
    python: str | None = None  # the interpreter on the cluster (default: the submitting one; the image's)
    job_dir: str | None = None  # submitit folders, logs, job records; must be on a shared file system
    sbatch: dict[str, str | int | bool] = {}  # any other sbatch option, e.g. {mail-type = "END"}
    # SLURM's warning before the time limit: training saves a checkpoint and stops (exit 75).
    signal: str = "USR1@120"
    requeue: bool = False  # a job stopped that way goes back in the queue and resumes from its checkpoint

    @field_validator("time")
    @classmethod
    def _slurm_time(cls, value: str) -> str:
        if not _TIME.match(value):
            raise ValueError(f"{value!r} is not a SLURM time (MM, MM:SS, HH:MM:SS, D-HH or D-HH:MM:SS)")
        return value

    @field_validator("signal")
    @classmethod
    def _stop_signal(cls, value: str) -> str:
        matched = _SIGNAL.match(value)
        if not matched:
            raise ValueError(f"{value!r} is not SIGNAL@SECONDS with a signal training stops on (USR1 or TERM), "
                             f"e.g. USR1@120")
        return f"{matched[1]}@{matched[2]}"

    @field_validator("mem")
    @classmethod
    def _slurm_mem(cls, value: str | None) -> str | None:
        if value is not None and not _MEM.match(value):
            raise ValueError(f"{value!r} is not a SLURM memory size (e.g. 64G, 0 for all of a node's)")
        return value

    @property
    def is_slurm(self) -> bool:
        return self.executor == "slurm"

    @property
    def tasks(self) -> int:
        return self.nodes * self.ntasks_per_node

    @property
    def time_minutes(self) -> int:
        """``time`` in whole minutes (submitit's unit), read as sbatch reads it."""
        days, _, clock = self.time.rpartition("-")
        parts = [int(part) for part in clock.split(":")]
        if days:  # D-HH, D-HH:MM, D-HH:MM:SS
            hours, minutes, seconds = (parts + [0, 0])[:3]
        else:  # MM, MM:SS, HH:MM:SS
            hours, minutes, seconds = [0, *parts, 0][:3] if len(parts) < 3 else parts
        return max(1, int(days or 0) * 1440 + hours * 60 + minutes + (1 if seconds else 0))

    @property
    def runs_in_container(self) -> bool:
        """One task with an image: the whole command runs in the container (several tasks: the
        driver runs on the node and srun puts the training tasks in the container)."""
        return bool(self.container_image) and self.tasks == 1

    def job_python(self) -> str:
        """The interpreter of the job's command: the profile's; in a container the image's (on its
        PATH), never this machine's path; else the submitting one."""
        return self.python or ("python" if self.runs_in_container else sys.executable)

    def resolved_job_dir(self) -> Path:
        default = Path(os.environ.get("NEMOTRON_RUNS_ROOT", "runs")) / "slurm"
        return (Path(self.job_dir).expanduser() if self.job_dir else default).absolute()

    def srun_args(self) -> list[str]:
        """What every training ``srun`` adds: pyxis' container flags."""
        if not self.container_image:
            return []
        args = [f"--container-image={self.container_image}"]
        if self.container_mounts:
            args.append(f"--container-mounts={','.join(self.container_mounts)}")
        return [*args, "--container-workdir=" + str(Path.cwd()), "--no-container-mount-home"]


def load_profile(name: str) -> Profile:
    """The named profile of the env.toml in effect, validated; one-line errors name the field."""
    env = load_env()
    if env.path is None:
        raise ConfigError(f"--run/--batch {name}: no env.toml found (looked in this directory and above, "
                          f"and NEMOTRON_ENV_FILE)", hint="copy env.example.toml to env.toml and edit a profile")
    table = env.profile(name)
    try:
        return Profile(**table)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "profile"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        elif first["type"] == "missing":
            message = "missing (executor = \"slurm\" or \"local\")"
        raise ConfigError(f"{env.path}: profile {name!r}: {field}: {message}",
                          hint="see env.example.toml for the keys a profile takes") from None
