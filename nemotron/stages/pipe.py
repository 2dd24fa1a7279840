"""The whole pipeline in one command: three data preps and three trainings, in order, and an
evaluation after each training; it ends with a table of what each model measured and the
report picture of the chain (:mod:`nemotron.stages.report`).

Each step composes its own recipe with its inputs (``run.data``, ``run.model``) pinned to the
exact versions the earlier steps logged, so a run of the same name made beside the pipe (a
sweep) never becomes a parent; a step run alone reads the family's and variant's ``:latest``.
A step whose output already exists for the same inputs and config returns the logged
artifact instead of running again, so a re-run after a failure picks up where it stopped.
Overrides apply to every step, or to one step with its name as a prefix:
``pretrain:train.steps=20``. Under a SLURM profile every step is its own job, chained with
``afterok``, and each resolves its inputs when it starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nemo_runspec.errors import ConfigError, NemotronError
from nemotron.stages.steps import PIPE_STEPS, PipeStep, check_groups

_PREFIXED = re.compile(r"^(?P<step>[a-z_]+):(?P<override>.+)$")


class PipeStepFailed(NemotronError):
    """A step of the pipe failed; the message names it."""


def route_overrides(overrides: list[str]) -> dict[str, list[str]]:
    """Each step's overrides: the shared ones, then those prefixed with its name."""
    names = [step.name for step in PIPE_STEPS]
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


def steps_until(last: str | None) -> tuple[PipeStep, ...]:
    """The steps from the first through ``last`` (all when None)."""
    names = [step.name for step in PIPE_STEPS]
    if last is None:
        return PIPE_STEPS
    if last not in names:
        raise ConfigError(f"--to {last}: no such step", hint=f"steps: {', '.join(names)}")
    return PIPE_STEPS[: names.index(last) + 1]


def step_overrides(step: PipeStep, routed: dict[str, list[str]], logged: dict[str, str]) -> list[str]:
    """A step's own overrides, its inputs pinned to the references ``logged`` holds for the
    steps they name, then the user's overrides for it (which win)."""
    pinned = [f"run.{key}={logged[name]}" for key, name in step.inputs if name in logged]
    return [*step.overrides, *pinned, *routed[step.name]]


def run_pipe(family: str, overrides: list[str], *, until: str | None = None, show_progress: bool = True) -> dict:
    """Run the steps in this process; returns each step's artifact by step name, in order."""
    from rich.console import Console

    from nemo_runspec.hydra_app import compose
    from nemotron.recipes import recipe

    console = Console()
    routed = route_overrides(overrides)
    steps = steps_until(until)
    artifacts, logged = {}, {}
    for number, step in enumerate(steps, 1):
        console.rule(f"[bold]{number}/{len(steps)} {step.name}")
        try:
            cfg = compose(recipe(family, step.recipe), step_overrides(step, routed, logged))
            artifact = step.function()(cfg, show_progress=show_progress)
        except NemotronError as err:
            failed = PipeStepFailed(f"step {number}/{len(steps)} {step.name} failed: {err}", hint=err.hint)
            failed.exit_status = getattr(err, "exit_status", 1)  # a stopped step still exits 75
            raise failed from err
        artifacts[step.name], logged[step.name] = artifact, f"{artifact.name}:v{artifact.version}"
    return artifacts


def submit_pipe(family: str, overrides: list[str], profile, *, until: str | None = None, debug: bool = False) -> list:
    """Submit every step as its own SLURM job, each waiting for the one before (afterok).

    Every step's config is composed here first, so a bad override submits nothing. Each job
    resolves its inputs (``run.data``, ``run.model``: ``:latest`` by default) when it starts,
    from what the jobs before it logged."""
    from omegaconf import OmegaConf

    from nemo_runspec.hydra_app import compose
    from nemo_runspec.slurm.launch import announce
    from nemo_runspec.slurm.submit import submit
    from nemotron.recipes import recipe
    from nemotron.stages.slurm import job_argv

    routed = route_overrides(overrides)
    steps = steps_until(until)
    latest, argvs = {}, []  # a job logs under its run.name; the jobs after it read that :latest
    for step in steps:
        own = step_overrides(step, routed, latest)
        cfg = compose(recipe(family, step.recipe), own)
        check_groups(step.recipe, cfg)
        argvs.append(job_argv(profile, family, step.command, own, debug))
        latest[step.name] = f"{OmegaConf.select(cfg, 'run.name')}:latest"
    jobs = []
    for step, argv in zip(steps, argvs):
        job = submit(profile, argv, f"{family}-{step.name}", after=[jobs[-1].job_id] if jobs else [])
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

    first = PIPE_STEPS[0]
    where = placement(run, batch, compose(recipe(family, first.recipe), route_overrides(overrides)[first.name]))
    if where is None:
        artifacts = run_pipe(family, overrides, until=until)
        final = artifacts[last_made(until).name]
        return PipeOutcome(current_tracking(), f"{final.name}:v{final.version}")
    jobs = submit_pipe(family, overrides, where.profile, until=until, debug=debug)
    if not where.wait:
        return PipeOutcome(jobs=tuple(jobs))
    follow_pipe(jobs)
    return PipeOutcome(setup_artifact_tracking(), f"{final_artifact_name(family, overrides, until)}:latest", tuple(jobs))


def last_made(until: str | None = None) -> PipeStep:
    """The last step through ``until`` that makes a model or data (not an evaluation of one)."""
    return [step for step in steps_until(until) if step.recipe != "eval"][-1]


def final_artifact_name(family: str, overrides: list[str], until: str | None = None) -> str:
    """The artifact name the last step that makes a model or data logs under (its ``run.name``)."""
    from omegaconf import OmegaConf

    from nemo_runspec.hydra_app import compose
    from nemotron.recipes import recipe

    last = last_made(until)
    cfg = compose(recipe(family, last.recipe), step_overrides(last, route_overrides(overrides), {}))
    return str(OmegaConf.select(cfg, "run.name"))
