"""The whole pipeline in one command: three data preps and three trainings, in order.

Each step composes its own recipe and resolves its inputs from the artifacts the earlier
steps logged (every recipe's ``run.data`` / ``run.model`` default to the family's and
variant's ``:latest``). A step whose output already exists for the same inputs and config
returns the logged artifact instead of running again, so a re-run after a failure picks up
where it stopped. Overrides apply to every step, or to one step with its name as a prefix:
``pretrain:train.steps=20``.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass

from nemo_runspec.errors import ConfigError, NemotronError


@dataclass(frozen=True)
class Step:
    recipe: str
    task: str  # module:function


STEPS = (
    Step("data_prep_pretrain", "nemotron.stages.pretrain_data:prep_pretrain"),
    Step("pretrain", "nemotron.stages.pretrain:train_pretrain"),
    Step("data_prep_sft", "nemotron.stages.sft_data:prep_sft"),
    Step("sft", "nemotron.stages.sft:train_sft"),
    Step("data_prep_rl", "nemotron.stages.rl_data:prep_rl"),
    Step("rl", "nemotron.stages.rl:train_rl"),
)
_PREFIXED = re.compile(r"^(?P<step>[a-z_]+):(?P<override>.+)$")


class PipeStepFailed(NemotronError):
    """A step of the pipe failed; the message names it."""


def route_overrides(overrides: list[str]) -> dict[str, list[str]]:
    """Each step's overrides: the shared ones, then those prefixed with its name."""
    names = [step.recipe for step in STEPS]
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


def run_pipe(family: str, overrides: list[str], *, show_progress: bool = True):
    """Run the six steps; returns the final model artifact."""
    from rich.console import Console

    from nemo_runspec.hydra_app import compose
    from nemotron.recipes import recipe

    console = Console()
    routed = route_overrides(overrides)
    artifact = None
    for number, step in enumerate(STEPS, 1):
        console.rule(f"[bold]{number}/{len(STEPS)} {step.recipe}")
        module, function = step.task.split(":")
        try:
            cfg = compose(recipe(family, step.recipe), routed[step.recipe])
            artifact = getattr(importlib.import_module(module), function)(cfg, show_progress=show_progress)
        except NemotronError as err:
            raise PipeStepFailed(f"step {number}/{len(STEPS)} {step.recipe} failed: {err}", hint=err.hint) from err
    return artifact
