"""Submit a command as a SLURM job through submitit, and remember it for ``jobs status|logs``.

The batch script runs one driver process: the same command the user would type, without
``--run``. A stage that needs several processes starts them itself with ``srun`` inside the
allocation (see :mod:`nemo_runspec.slurm.rendezvous`), so composing the config, resolving inputs
and logging the artifact happen once per job, not once per rank. With a container image, a
one-task job runs its driver in the container; a multi-task job's driver runs on the node
(the profile's ``setup`` activates nemotron there) and its training tasks in the container.

Stopping: the profile's ``signal`` (default ``USR1@120``) is sbatch's ``--signal``, which SLURM
sends to the job's steps (never to the batch shell, which would die of it). So a one-task job
runs its driver as a step (``srun``), and a multi-task job's training tasks are a step of their
own. Training saves a checkpoint and exits 75; with ``requeue = true`` the job then puts
itself back in the queue (``scontrol requeue``), and its rerun, the same command, resumes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from nemo_runspec import atomic
from nemo_runspec.env import exported
from nemo_runspec.errors import NemotronError
from nemo_runspec.slurm.jobs import no_client
from nemo_runspec.slurm.profile import Profile
from nemo_runspec.slurm.rendezvous import SRUN_ARGS_VAR
from nemo_runspec.stop_signals import STOPPED_EXIT, run_passing_on_stops

IN_JOB_VAR = "NEMOTRON_SUBMITTED"  # set in every submitted job: its command must run, not submit again


@dataclass(frozen=True)
class CommandJob:
    """What the batch script runs: ``argv`` in ``cwd``; the job's exit code is the command's.
    A command that stopped on a signal after saving (exit 75) requeues the job if ``requeue``."""

    argv: list[str]
    cwd: str
    env: dict[str, str]
    requeue: bool = False

    def __call__(self) -> int:
        env = {**os.environ, **self.env}
        env.setdefault("PYTHONUNBUFFERED", "1")
        # submitit's srun gives the step a pseudo-terminal (--unbuffered): no live redraws in the log.
        env.setdefault("TTY_INTERACTIVE", "0")
        status = run_passing_on_stops(self.argv, env=env, cwd=self.cwd)
        if status == STOPPED_EXIT and self.requeue:
            requeue_this_job()
        if status != 0:
            raise SystemExit(status)  # not an exception: SLURM records the command's own exit code
        return status


def requeue_this_job() -> None:
    """Put the running job back in the queue; SLURM ends this run of it (the rerun starts after
    SLURM's requeue delay, about two minutes by default)."""
    job_id = os.environ.get("SLURM_JOB_ID", "")
    done = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True)
    if done.returncode == 0:
        print(f"job {job_id} stopped after saving a checkpoint: requeued, its rerun resumes from it", flush=True)
    else:
        print(f"warning: job {job_id} could not requeue itself: {done.stderr.strip() or done.returncode}; "
              f"submit the same command again to resume", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class SubmittedJob:
    job_id: str
    name: str
    profile: str
    argv: list[str]
    cwd: str
    log: str
    submitted_at: float
    dependency: str | None = None

    @property
    def log_path(self) -> Path:
        return Path(self.log)


def submit(profile: Profile, argv: list[str], name: str, *, after: list[str] = ()) -> SubmittedJob:
    """Submit ``argv`` (run in this directory) under ``profile``; ``after``: job ids that must
    complete first (``afterok``; the job is cancelled if one of them fails)."""
    return submit_array(profile, [argv], name, after=after)[0]


def submit_array(profile: Profile, argvs: list[list[str]], name: str, *, after: list[str] = ()) -> list[SubmittedJob]:
    """Submit one job per command; several commands go as one SLURM array (ids ``ARRAY_i``)."""
    import submitit

    job_dir = profile.resolved_job_dir()
    executor = submitit.SlurmExecutor(folder=job_dir / "%j", python=profile.job_python())
    executor.update_parameters(**sbatch_parameters(profile, name, after))
    # The profile's env goes through sbatch's environment unless the profile sets sbatch's own
    # export option (--export=NONE would drop it): then it rides in the pickled command.
    own_export = "export" in profile.sbatch
    env = {**(profile.env if own_export else {}), SRUN_ARGS_VAR: json.dumps(profile.srun_args()), IN_JOB_VAR: "1"}
    commands = [CommandJob(list(argv), str(Path.cwd()), env, requeue=profile.requeue) for argv in argvs]
    check_accepted(profile, name, after)
    # submitit prints sbatch's stderr itself; check_accepted already said it in one line.
    with contextlib.redirect_stderr(io.StringIO()), exported({} if own_export else profile.env):
        if len(commands) == 1:
            jobs = [executor.submit(commands[0])]
        else:
            with executor.batch():
                jobs = [executor.submit(command) for command in commands]
    submitted = [SubmittedJob(job_id=str(job.job_id), name=name, profile=profile.name, argv=list(argv),
                              cwd=str(Path.cwd()), log=str(job.paths.stdout), submitted_at=time.time(),
                              dependency=",".join(after) or None) for job, argv in zip(jobs, argvs)]
    for job in submitted:
        write_record(job_dir, job)
    return submitted


def check_accepted(profile: Profile, name: str, after: list[str] = ()) -> None:
    """``sbatch --test-only`` of the same request: one that SLURM refuses (unknown partition,
    impossible resources, no controller) fails here, before submitit writes into the job folder."""
    import tempfile

    from submitit.slurm.slurm import _make_sbatch_string

    with tempfile.TemporaryDirectory() as scratch:
        script = Path(scratch) / "check.sh"
        script.write_text(_make_sbatch_string(command="true", folder=scratch, **sbatch_parameters(profile, name, after)))
        try:
            checked = subprocess.run(["sbatch", "--test-only", str(script)], capture_output=True, text=True)
        except FileNotFoundError:
            raise no_client("sbatch") from None
    if checked.returncode != 0:
        lines = checked.stderr.strip().splitlines() or [f"exit status {checked.returncode}"]
        raise NemotronError(f"sbatch refused job {name!r}: {lines[-1].removeprefix('sbatch: error: ')}",
                            hint=f"check profile {profile.name!r} in env.toml (partition, account, time, resources)")


def sbatch_parameters(profile: Profile, name: str, after: list[str] = ()) -> dict:
    """The profile as submitit's SlurmExecutor parameters; ``after``: afterok dependencies."""
    extra: dict = dict(profile.sbatch)
    if after:
        extra["dependency"] = "afterok:" + ":".join(after)
        extra["kill-on-invalid-dep"] = "yes"
    if profile.exclusive:
        extra["exclusive"] = True
    # In place of submitit's USR2@90, which nothing here would catch.
    extra.setdefault("signal", profile.signal)
    if profile.requeue:
        extra["requeue"] = True
    one_task = profile.tasks == 1
    optional = {"partition": profile.partition, "account": profile.account, "qos": profile.qos,
                "constraint": profile.constraint, "gpus_per_node": profile.gpus_per_node,
                "cpus_per_task": profile.cpus_per_task, "mem": profile.mem}
    return {
        "job_name": name,
        "nodes": profile.nodes,
        "ntasks_per_node": profile.ntasks_per_node,
        "time": profile.time_minutes,
        "setup": list(profile.setup),
        "stderr_to_stdout": True,
        # One task: the driver is a step (in the container, if any), so that the stop signal
        # reaches it. Several tasks: the driver runs on the node and starts the training tasks
        # (in the container) as a step itself.
        "use_srun": one_task,
        "srun_args": profile.srun_args() if one_task else None,
        "additional_parameters": extra,
        **{key: value for key, value in optional.items() if value is not None},
    }


def records_dir(job_dir: Path) -> Path:
    return job_dir / "jobs"


def write_record(job_dir: Path, job: SubmittedJob) -> None:
    atomic.write_json(records_dir(job_dir) / f"{job.job_id}.json", asdict(job))


def load_records(job_dir: Path) -> list[SubmittedJob]:
    """The jobs submitted from this job directory, oldest first."""
    jobs = []
    for path in sorted(records_dir(job_dir).glob("*.json")):
        try:
            jobs.append(SubmittedJob(**json.loads(path.read_text(encoding="utf-8"))))
        except (ValueError, TypeError) as err:
            print(f"warning: skipping unreadable job record {path}: {err}", file=sys.stderr)
    return sorted(jobs, key=lambda job: job.submitted_at)
