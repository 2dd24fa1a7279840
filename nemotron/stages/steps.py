"""The registry of steps: each recipe's task, CLI words and config schema, in pipeline order.

The CLI registers one command per step (``STEPS``) and SLURM jobs run its words. The pipe runs
``PIPE_STEPS``: the six stages in order, with an evaluation after each training (the ``eval``
step under a name of its own, pointed at the model the training before it logged).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nemo_runspec.errors import ConfigError


@dataclass(frozen=True)
class Step:
    recipe: str
    task: str  # module:function, called with the composed config
    command: tuple[str, ...]  # the words after `nemotron <family>`
    schema: str  # module:class of its config schema (nemotron.schemas.steps)
    doc: str

    def function(self) -> Callable[..., Any]:
        module, name = self.task.split(":")
        return getattr(importlib.import_module(module), name)

    def schema_class(self) -> type:
        module, name = self.schema.split(":")
        return getattr(importlib.import_module(module), name)


_SCHEMAS = "nemotron.schemas.steps"
STEPS = (
    Step("data_prep_pretrain", "nemotron.stages.pretrain_data:prep_pretrain", ("data", "prep", "pretrain"),
         f"{_SCHEMAS}:PretrainDataStep", "Raw text -> Megatron bin/idx shards + blend.json (PretrainBlendsArtifact)."),
    Step("pretrain", "nemotron.stages.pretrain:train_pretrain", ("pretrain",), f"{_SCHEMAS}:PretrainStep",
         "Pretrain a GPT model on Megatron-Core from run.data (ModelArtifact, stage=pretrain)."),
    Step("data_prep_sft", "nemotron.stages.sft_data:prep_sft", ("data", "prep", "sft"), f"{_SCHEMAS}:SFTDataStep",
         "Chat data -> loss-masked, packed Parquet (SFTDataArtifact)."),
    Step("sft", "nemotron.stages.sft:train_sft", ("sft",), f"{_SCHEMAS}:SFTStep",
         "Fine-tune run.model on the packed conversations of run.data (ModelArtifact, stage=sft)."),
    Step("data_prep_rl", "nemotron.stages.rl_data:prep_rl", ("data", "prep", "rl"), f"{_SCHEMAS}:RLDataStep",
         "Prompts with verifiable answers -> train/val/test JSONL (SplitJsonlDataArtifact)."),
    Step("rl", "nemotron.stages.rl:train_rl", ("rl",), f"{_SCHEMAS}:RLStep",
         "GRPO of run.model on the prompts of run.data (ModelArtifact, stage=rl; TRL or NeMo-RL)."),
)
STEPS = (*STEPS,
         Step("eval", "nemotron.stages.evaluate:evaluate", ("eval",), f"{_SCHEMAS}:EvalStep",
              "Evaluate run.model on a split of run.data (EvalResultArtifact: held-out loss and perplexity, "
              "or accuracy and format rate with eval=accuracy)."))


@dataclass(frozen=True)
class PipeStep:
    """A step of the pipe: a registered step under the pipe's ``name`` for it, with overrides
    of its own, and inputs (``run.<key>``) pinned to what earlier pipe steps logged."""

    name: str
    step: Step
    overrides: tuple[str, ...] = ()
    inputs: tuple[tuple[str, str], ...] = ()  # (run key, name of the pipe step whose artifact it reads)

    @property
    def recipe(self) -> str:
        return self.step.recipe

    @property
    def command(self) -> tuple[str, ...]:
        return self.step.command

    def function(self) -> Callable[..., Any]:
        return self.step.function()


def _pipe_steps() -> tuple[PipeStep, ...]:
    named = {step.recipe: step for step in STEPS}

    def evaluation(name: str, kind: str, model: str, data: str, *extra: str) -> PipeStep:
        return PipeStep(name, named["eval"], (f"eval={kind}", f"run.name=${{family}}-{name.replace('_', '-')}-${{variant}}",
                                              *extra), (("model", model), ("data", data)))

    # A training reads the versions the pipe's own steps logged, not :latest: a run of the same
    # name made beside the pipe (a sweep, say) must not become the next stage's parent.
    return (PipeStep("data_prep_pretrain", named["data_prep_pretrain"]),
            PipeStep("pretrain", named["pretrain"], inputs=(("data", "data_prep_pretrain"),)),
            evaluation("eval_initial", "loss", "pretrain", "data_prep_pretrain", "eval.weights=initial"),
            evaluation("eval_pretrain", "loss", "pretrain", "data_prep_pretrain"),
            PipeStep("data_prep_sft", named["data_prep_sft"]),
            PipeStep("sft", named["sft"], inputs=(("model", "pretrain"), ("data", "data_prep_sft"))),
            PipeStep("data_prep_rl", named["data_prep_rl"]),
            evaluation("eval_sft", "accuracy", "sft", "data_prep_rl"),
            PipeStep("rl", named["rl"], inputs=(("model", "sft"), ("data", "data_prep_rl"))),
            evaluation("eval_rl", "accuracy", "rl", "data_prep_rl"))


PIPE_STEPS = _pipe_steps()


def step_named(recipe: str) -> Step:
    for step in STEPS:
        if step.recipe == recipe:
            return step
    raise ConfigError(f"no step {recipe!r}", hint=f"steps: {', '.join(s.recipe for s in STEPS)}")


def command_of(recipe: str) -> tuple[str, ...]:
    """The CLI words that run a step's recipe (``data prep pretrain``)."""
    return step_named(recipe).command


def check_groups(recipe: str, cfg: Any) -> None:
    """Validate the groups of ``recipe``'s composed config that resolve before its job runs
    (:func:`nemotron.stages.step.check_groups`): a bad value never queues."""
    from nemotron.stages.step import check_groups as check

    check(step_named(recipe).schema_class(), cfg)
