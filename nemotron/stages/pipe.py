"""The whole pipeline in one command: three data preps and three trainings, in order.

Each step composes its own recipe and resolves its inputs from the artifacts the earlier
steps logged (every recipe's ``run.data`` / ``run.model`` default to the family's and
variant's ``:latest``). A step whose output already exists for the same inputs and config
returns the logged artifact instead of running again, so a re-run after a failure picks up
where it stopped. Overrides apply to every step, or to one step with its name as a prefix:
``pretrain:train.steps=20``. Under a SLURM profile every step is its own job, chained with
``afterok``, and each resolves its inputs when it starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nemo_runspec.errors import ConfigError, NemotronError
from nemotron.stages.steps import PIPE_STEPS, Step, check_groups

_PREFIXED = re.compile(r"^(?P<step>[a-z_]+):(?P<override>.+)$")


class PipeStepFailed(NemotronError):
    """A step of the pipe failed; the message names it."""


def route_overrides(overrides: list[str]) -> dict[str, list[str]]:
    """Each step's overrides: the shared ones, then those prefixed with its name."""
    names = [step.recipe for step in PIPE_STEPS]
    routed = {name: [] for name in names}
    for override in overrides:
        match = _PREFIXED.match(override)
        if match and match["step"] in routed:
            routed[match["step"]].append(match["override"])
        elif match and "=" not in override.split(":", 1)[0]:
            raise ConfigError(f"override {override!r} names no step (steps: {', '.join(names)})")
        else:
            for name in names:
                routed[name].append(override)
    return routed


def steps_until(last: str | None) -> tuple[Step, ...]:
    """The steps from the first through ``last`` (all six when None)."""
    names = [step.recipe for step in PIPE_STEPS]
    if last is None:
        return PIPE_STEPS
    if last not in names:
        raise ConfigError(f"--to {last}: no such step", hint=f"steps: {', '.join(names)}")
    return PIPE_STEPS[: names.index(last) + 1]


def run_pipe(family: str, overrides: list[str], *, until: str | None = None, show_progress: bool = True):
    """Run the steps in this process; returns the final model (or data) artifact."""
    from rich.console import Console

    from nemo_runspec.hydra_app import compose
    from nemotron.recipes import recipe

    console = Console()
    routed = route_overrides(overrides)
    steps = steps_until(until)
    artifact = None
    for number, step in enumerate(steps, 1):
        console.rule(f"[bold]{number}/{len(steps)} {step.recipe}")
        try:
            cfg = compose(recipe(family, step.recipe), routed[step.recipe])
            artifact = step.function()(cfg, show_progress=show_progress)
        except NemotronError as err:
            failed = PipeStepFailed(f"step {number}/{len(steps)} {step.recipe} failed: {err}", hint=err.hint)
            failed.exit_status = getattr(err, "exit_status", 1)  # a stopped step still exits 75
            raise failed from err
    return artifact


def submit_pipe(family: str, overrides: list[str], profile, *, until: str | None = None, debug: bool = False) -> list:
    """Submit every step as its own SLURM job, each waiting for the one before (afterok).

    Every step's config is composed here first, so a bad override submits nothing. Each job
    resolves its inputs (``run.data``, ``run.model``: ``:latest`` by default) when it starts,
    from what the jobs before it logged."""
    from nemo_runspec.hydra_app import compose
    from nemo_runspec.slurm.launch import announce
    from nemo_runspec.slurm.submit import submit
    from nemotron.recipes import recipe
    from nemotron.stages.slurm import job_argv

    routed = route_overrides(overrides)
    steps = steps_until(until)
    for step in steps:
        check_groups(step.recipe, compose(recipe(family, step.recipe), routed[step.recipe]))
    jobs = []
    for step in steps:
        argv = job_argv(profile, family, step.command, routed[step.recipe], debug)
        job = submit(profile, argv, f"{family}-{step.recipe}", after=[jobs[-1].job_id] if jobs else [])
        announce(job, profile)
        jobs.append(job)
    return jobs


def follow_pipe(jobs: list) -> None:
    """Stream each step's log in turn; on a failure cancel the steps after it and name the step."""
    from rich.console import Console

    from nemo_runspec.slurm.jobs import JobFailed
    from nemo_runspec.slurm.launch import wait_in_order

    console = Console()
    try:
        wait_in_order(jobs, lambda number, job: console.rule(f"[bold]{number}/{len(jobs)} {job.name} (job {job.job_id})"))
    except JobFailed as err:
        raise PipeStepFailed(f"step {err.position}/{len(jobs)} {jobs[err.position - 1].name} failed: {err}",
                             hint=err.hint) from err


@dataclass(frozen=True)
class PipeOutcome:
    tracking: object = None
    final: str | None = None  # the last step's artifact reference; None when submitted without waiting
    jobs: tuple = ()


def pipe_here_or_on_slurm(family: str, overrides: list[str], *, run: str | None = None, batch: str | None = None,
                          until: str | None = None, debug: bool = False) -> PipeOutcome:
    """The pipe in this process, or as chained SLURM jobs under a profile (``--run``: wait)."""
    from nemo_runspec.artifacts import current_tracking, setup_artifact_tracking
    from nemo_runspec.hydra_app import compose
    from nemotron.recipes import recipe
    from nemotron.stages.slurm import placement

    first = PIPE_STEPS[0].recipe
    where = placement(run, batch, compose(recipe(family, first), route_overrides(overrides)[first]))
    if where is None:
        final = run_pipe(family, overrides, until=until)
        return PipeOutcome(current_tracking(), f"{final.name}:v{final.version}")
    jobs = submit_pipe(family, overrides, where.profile, until=until, debug=debug)
    if not where.wait:
        return PipeOutcome(jobs=tuple(jobs))
    follow_pipe(jobs)
    return PipeOutcome(setup_artifact_tracking(), f"{final_artifact_name(family, overrides, until)}:latest", tuple(jobs))


def final_artifact_name(family: str, overrides: list[str], until: str | None = None) -> str:
    """The artifact name the last step logs under (its ``run.name``)."""
    from omegaconf import OmegaConf

    from nemo_runspec.hydra_app import compose
    from nemotron.recipes import recipe

    last = steps_until(until)[-1]
    cfg = compose(recipe(family, last.recipe), route_overrides(overrides)[last.recipe])
    return str(OmegaConf.select(cfg, "run.name"))
