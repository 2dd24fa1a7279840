"""``--run PROFILE`` / ``--batch PROFILE``: submit a command, then follow it or return its id;
and the Hydra overrides that make ``-m`` sweeps one SLURM array job through submitit."""

from __future__ import annotations

import os
import re
import sys
from typing import TextIO

from nemo_runspec.slurm.jobs import JobFailed, cancel, follow, raise_for_state
from nemo_runspec.slurm.profile import Profile
from nemo_runspec.slurm.rendezvous import SRUN_ARGS_VAR
from nemo_runspec.slurm.submit import SubmittedJob, submit


def announce(job: SubmittedJob, profile: Profile, out: TextIO = sys.stdout) -> None:
    where = f"partition {profile.partition}" if profile.partition else "the default partition"
    after = f", after job {job.dependency} completes" if job.dependency else ""
    print(f"submitted job {job.job_id} ({job.name}) to {where} with profile {profile.name!r}{after}; log: {job.log}",
          file=out, flush=True)


def wait_for(job: SubmittedJob, out: TextIO | None = sys.stdout) -> None:
    """Stream the job's log until it ends; a one-line error unless it completed. Ctrl-C stops
    following, not the job."""
    try:
        state = follow(job.job_id, job.log_path, out)
    except KeyboardInterrupt:
        print(f"\nstopped following job {job.job_id}; it goes on: `nemotron jobs logs {job.job_id} -f` follows it, "
              f"`nemotron jobs cancel {job.job_id}` stops it", file=sys.stderr)
        raise SystemExit(130) from None
    raise_for_state(state, job.name, job.log_path)
    if out is not None:
        print(f"job {job.job_id} ({job.name}) completed", file=out, flush=True)


def wait_in_order(jobs: list[SubmittedJob], before_each=None, out: TextIO | None = sys.stdout) -> None:
    """Follow the jobs one after another. On a failure the jobs after it are cancelled (a chain
    would never start them) and the JobFailed raised carries ``position``, 1-based."""
    for position, job in enumerate(jobs, 1):
        if before_each is not None:
            before_each(position, job)
        try:
            wait_for(job, out)
        except JobFailed as err:
            if rest := [later.job_id for later in jobs[position:]]:
                cancel(rest)
            err.position = position
            raise


def wait_for_all(jobs: list[SubmittedJob], out: TextIO | None = sys.stdout) -> None:
    """Follow independent jobs (a sweep's) one after another, each to its end whatever the
    others did; then one error for the failures, naming the first."""
    failed: list[JobFailed] = []
    for job in jobs:
        try:
            wait_for(job, out)
        except JobFailed as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            failed.append(err)
    if failed:
        raise JobFailed(f"{len(failed)} of {len(jobs)} jobs failed, first: {failed[0]}", hint=failed[0].hint)


def run_or_batch(profile: Profile, argv: list[str], name: str, *, wait: bool) -> SubmittedJob:
    job = submit(profile, argv, name)
    announce(job, profile)
    if wait:
        wait_for(job)
    else:
        print(job.job_id, flush=True)  # last line: the id alone, for scripts
    return job


def sweep_overrides(profile: Profile, name: str) -> list[str]:
    """Hydra overrides that hand ``-m`` jobs to hydra-submitit-launcher (one array job), each
    job recording itself for ``nemotron jobs`` when it starts (:mod:`.sweep_record`).

    Each sweep job is one task that runs the whole stage; a stage that wants several training
    processes per node starts them with torchrun (``train.nproc_per_node``). The profile's
    environment variables reach the jobs through sbatch's default ``--export=ALL``. Sweep jobs
    get the profile's stop signal (they save a checkpoint and stop) but do not requeue
    themselves: Hydra's launcher runs the stage inside submitit's own job process."""
    os.environ.update(profile.env)
    os.environ[SRUN_ARGS_VAR] = "[]"
    values = {
        "submitit_folder": str(profile.resolved_job_dir() / "%j"),
        "name": name,
        "nodes": 1,
        "tasks_per_node": 1,
        "timeout_min": profile.time_minutes,
        "stderr_to_stdout": True,
        "partition": profile.partition,
        "account": profile.account,
        "qos": profile.qos,
        "constraint": profile.constraint,
        "gpus_per_node": profile.gpus_per_node,
        "cpus_per_task": profile.cpus_per_task,
    }
    overrides = ["hydra/launcher=submitit_slurm",
                 "+hydra.callbacks.slurm_jobs._target_=nemo_runspec.slurm.sweep_record.RecordSweepJob",
                 f"+hydra.callbacks.slurm_jobs.name={hydra_value(name)}",
                 f"+hydra.callbacks.slurm_jobs.profile={hydra_value(profile.name)}",
                 f"+hydra.callbacks.slurm_jobs.job_dir={hydra_value(str(profile.resolved_job_dir()))}"]
    overrides += [f"hydra.launcher.{key}={hydra_value(value)}" for key, value in values.items() if value is not None]
    if profile.setup:
        overrides.append(f"hydra.launcher.setup=[{','.join(hydra_value(line) for line in profile.setup)}]")
    extra = dict(profile.sbatch, **({"mem": profile.mem} if profile.mem else {}))
    extra.setdefault("signal", profile.signal)  # in place of submitit's USR2@90, which nothing catches
    overrides += [f"+hydra.launcher.additional_parameters.{key}={hydra_value(value)}" for key, value in extra.items()]
    return overrides


def hydra_value(value) -> str:
    """A value in Hydra's override grammar; strings are quoted so any character survives."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    # Hydra unescapes backslashes only before a quote (and at the end of the string);
    # OmegaConf would read ${...} (a shell's too) as an interpolation.
    text = re.sub(r"(\\*)'", lambda m: m[1] * 2 + "\\'", str(value).replace("${", "\\${"))
    text = re.sub(r"(\\+)$", lambda m: m[1] * 2, text)
    return f"'{text}'"
