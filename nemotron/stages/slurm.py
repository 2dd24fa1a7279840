"""Stages as SLURM jobs: where a command runs (``--run/--batch PROFILE``, or ``launcher=slurm
launcher.profile=NAME`` in the config) and submitting a recipe, a sweep or a sharded prep.

A submitted job runs the same ``nemotron`` command without ``--run``; it carries
``launcher=slurm launcher.profile=NAME`` so the config it records says where it ran, and
``NEMOTRON_SUBMITTED`` in its environment so it runs in place instead of submitting again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from nemo_runspec.errors import ConfigError
from nemo_runspec.slurm.profile import Profile
from nemo_runspec.slurm.submit import IN_JOB_VAR
from nemotron.stages.steps import check_groups, command_of, step_named


@dataclass(frozen=True)
class Placement:
    """A SLURM profile, and whether to wait for the jobs (``--run``) or not (``--batch``)."""

    profile: Profile
    wait: bool


def placement(run: str | None, batch: str | None, cfg=None) -> Placement | None:
    """Where the command's work goes: None to run here; a Placement to submit it. ``cfg``: the
    command's composed config, whose ``launcher`` group applies when neither option is given."""
    from nemo_runspec.slurm.profile import load_profile

    if os.environ.get(IN_JOB_VAR):
        return None
    if run and batch:
        raise ConfigError("--run and --batch exclude each other", hint="--run waits for the job, --batch returns its id")
    if run or batch:
        name, wait = run or batch, bool(run)
    elif cfg is not None and (configured := _configured_launcher(cfg)) is not None:
        name, wait = configured
    else:
        return None
    profile = load_profile(name)
    return Placement(profile, wait) if profile.is_slurm else None


def _configured_launcher(cfg) -> tuple[str, bool] | None:
    from omegaconf import OmegaConf

    from nemo_runspec.groups import LauncherConfig
    from nemo_runspec.schema import validate

    node = OmegaConf.select(cfg, "launcher")
    if node is None:
        return None
    if node.get("executor") == "slurm" and OmegaConf.is_missing(node, "profile"):
        raise ConfigError("launcher=slurm needs launcher.profile=NAME (an env.toml profile)",
                          hint="or pass --run PROFILE / --batch PROFILE")
    launcher = validate(LauncherConfig, OmegaConf.to_container(node, resolve=True), "launcher")
    return (launcher.profile, launcher.wait) if launcher.executor == "slurm" else None


def job_argv(profile: Profile, family: str, command: tuple[str, ...], overrides: list[str], debug: bool) -> list[str]:
    """The command a job runs: ``nemotron <family> <command> <overrides>`` with the launcher
    group saying which profile ran it."""
    from nemo_runspec.slurm.launch import hydra_value

    kept = [o for o in overrides if not o.split("=", 1)[0].lstrip("+~").startswith("launcher")]
    return [profile.job_python(), "-m", "nemotron.cli.app", *(["--debug"] if debug else []), family, *command,
            *kept, "launcher=slurm", f"launcher.profile={hydra_value(profile.name)}"]


def submit_recipe(where: Placement, family: str, recipe_name: str, overrides: list[str], composed: list,
                  multirun: bool, debug: bool) -> None:
    """One job, or with -m one array job: through Hydra's submitit launcher with ``--run``, by
    :func:`sweep_array` with ``--batch`` or a container image (Hydra's launcher can neither
    return before its jobs end nor run them in an image). ``composed``: every job's config
    (:func:`nemo_runspec.hydra_app.compose_jobs`), so a bad override never queues."""
    from nemo_runspec import hydra_app
    from nemo_runspec.slurm.launch import hydra_value, run_or_batch, sweep_overrides
    from nemo_runspec.slurm.submit import check_accepted
    from nemotron.recipes import recipe

    source, name, profile = recipe(family, recipe_name), f"{family}-{recipe_name}", where.profile
    for cfg in composed:
        check_groups(recipe_name, cfg)
    if multirun and (not where.wait or profile.container_image):
        sweep_array(profile, family, recipe_name, name, overrides, debug, wait=where.wait)
        return
    if multirun:
        check_accepted(profile, name)  # Hydra's launcher would report a refusal as a traceback
        recorded = ["launcher=slurm", f"launcher.profile={hydra_value(profile.name)}"]
        hydra_app.run(source, [*overrides, *recorded, *sweep_overrides(profile, name)],
                      step_named(recipe_name).function(), multirun=True, debug=debug)
        return
    hydra_app.require_multirun(len(composed), multirun)
    run_or_batch(profile, job_argv(profile, family, command_of(recipe_name), overrides, debug), name, wait=where.wait)


def sweep_array(profile: Profile, family: str, recipe_name: str, name: str, overrides: list[str], debug: bool,
                *, wait: bool) -> list:
    """A sweep as one array job of ours: each element the command with its own values, run like
    any submitted command (in the profile's image, if it has one). Without ``wait`` the array's
    id is the last line; with it, every element is followed to its end."""
    from nemo_runspec.hydra_app import expand_sweeps
    from nemo_runspec.slurm.launch import announce, wait_for_all
    from nemo_runspec.slurm.submit import submit_array

    command = command_of(recipe_name)
    jobs = submit_array(profile, [job_argv(profile, family, command, job, debug) for job in expand_sweeps(overrides)], name)
    for job in jobs:
        announce(job, profile)
    if wait:
        wait_for_all(jobs)
    else:
        print(jobs[0].job_id.split("_")[0], flush=True)  # last line: the array's id alone, for scripts
    return jobs


def submit_slices(where: Placement, family: str, count: int, overrides: list[str], debug: bool) -> list:
    """Stage-0 prep on many nodes: ``count`` slice jobs as one array, then ``--finalize`` after
    all of them; with ``wait``, follows them in turn. The caller has composed the overrides."""
    from nemo_runspec.slurm.launch import announce, wait_in_order
    from nemo_runspec.slurm.submit import submit, submit_array

    profile, name = where.profile, f"{family}-data_prep_pretrain"
    command = ("data", "prep", "pretrain", "--num-shards", str(count))
    slices = submit_array(profile, [job_argv(profile, family, (*command, "--shard-index", str(index)), overrides, debug)
                                    for index in range(count)], name)
    final = submit(profile, job_argv(profile, family, (*command, "--finalize"), overrides, debug),
                   f"{name}-finalize", after=[slices[0].job_id.split("_")[0]])
    jobs = [*slices, final]
    for job in jobs:
        announce(job, profile)
    if where.wait:
        wait_in_order(jobs)
    return jobs
