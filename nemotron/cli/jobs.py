"""``nemotron jobs status|logs|cancel``: the SLURM jobs submitted with --run/--batch."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="SLURM jobs submitted with --run/--batch PROFILE: status, logs, cancel.", no_args_is_help=True)

_JOB_DIR = typer.Option(None, "--job-dir", help="Where the jobs were recorded (default: every SLURM profile's "
                                                "job_dir, and $NEMOTRON_RUNS_ROOT/slurm or ./runs/slurm).")
_PROFILE = typer.Option(None, "--profile", help="Only the jobs recorded in this env.toml profile's job_dir.")


def _job_dirs(job_dir: Path | None, profile: str | None) -> list[Path]:
    """Where to look for job records: the given folder, the profile's, else every SLURM
    profile's in env.toml and the default."""
    from nemo_runspec.env import load_env
    from nemo_runspec.slurm.profile import Profile, load_profile

    if job_dir is not None:
        return [job_dir]
    if profile:
        return [load_profile(profile).resolved_job_dir()]
    folders = [Profile(name="default", executor="slurm").resolved_job_dir()]
    for name in load_env().profile_names:
        chosen = load_profile(name)
        if chosen.is_slurm and chosen.resolved_job_dir() not in folders:
            folders.append(chosen.resolved_job_dir())
    return folders


def _records(folders: list[Path]) -> list:
    from nemo_runspec.slurm.submit import load_records

    return sorted((job for folder in folders for job in load_records(folder)), key=lambda job: job.submitted_at)


def _record(job_id: str, folders: list[Path]):
    from nemo_runspec.errors import NemotronError

    for job in _records(folders):
        if job.job_id == job_id:
            return job
    raise NemotronError(f"no job {job_id} was submitted from here (records in {', '.join(str(f / 'jobs') for f in folders)})",
                        hint="`nemotron jobs status` lists the recorded jobs; --job-dir or --profile points elsewhere")


@app.command("status")
def status(
    job_ids: list[str] = typer.Argument(None, metavar="[JOB_ID]...", help="Default: the most recent jobs."),
    last: int = typer.Option(20, "--last", min=1, help="How many recent jobs to show."),
    job_dir: Path = _JOB_DIR,
    profile: str = _PROFILE,
) -> None:
    """State, exit code and log of recorded jobs (from squeue, then sacct)."""
    from datetime import datetime

    from rich.console import Console
    from rich.table import Table

    from nemo_runspec.slurm.jobs import job_state

    folders = _job_dirs(job_dir, profile)
    records = [_record(job_id, folders) for job_id in job_ids] if job_ids else _records(folders)[-last:]
    table = Table("job", "name", "profile", "state", "exit", "submitted", "log")
    for job in records:
        state = job_state(job.job_id)
        reason = f" ({state.reason})" if state.reason and not state.done else ""
        exit_code = "" if state.exit_code is None else f"{state.exit_code}" + (f":{state.signal}" if state.signal else "")
        table.add_row(job.job_id, job.name, job.profile, state.state + reason, exit_code,
                      datetime.fromtimestamp(job.submitted_at).strftime("%Y-%m-%d %H:%M:%S"), job.log)
    Console().print(table)


@app.command("logs")
def logs(
    job_id: str = typer.Argument(..., metavar="JOB_ID"),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until the job ends."),
    lines: int | None = typer.Option(None, "--lines", "-n", min=1, help="Only the last N lines."),
    job_dir: Path = _JOB_DIR,
    profile: str = _PROFILE,
) -> None:
    """Print a job's log (stdout and stderr of its driver)."""
    import sys

    from nemo_runspec.errors import NemotronError
    from nemo_runspec.slurm.jobs import follow as follow_job
    from nemo_runspec.slurm.jobs import raise_for_state, tail

    job = _record(job_id, _job_dirs(job_dir, profile))
    if follow:
        raise_for_state(follow_job(job.job_id, job.log_path, sys.stdout), job.name, job.log_path)
        return
    if not job.log_path.is_file():
        raise NemotronError(f"job {job_id} has no log yet ({job.log})", hint="a pending job writes none; --follow waits")
    if lines:
        sys.stdout.write("".join(tail(job.log_path, lines)))
    else:
        sys.stdout.write(job.log_path.read_text(encoding="utf-8", errors="replace"))


@app.command("cancel")
def cancel(job_ids: list[str] = typer.Argument(..., metavar="JOB_ID...")) -> None:
    """Cancel jobs (scancel); a pipe's later steps are cancelled by SLURM with them."""
    from nemo_runspec.slurm.jobs import cancel as scancel

    scancel(job_ids)
    typer.echo(f"cancelled {' '.join(job_ids)}")
