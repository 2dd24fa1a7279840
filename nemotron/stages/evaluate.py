"""Evaluation step: a ModelArtifact on a split of a data artifact -> EvalResultArtifact.

- ``eval=loss``: the held-out loss of a Megatron checkpoint (any architecture the trainer
  builds) on a PretrainBlendsArtifact's ``valid`` or ``test`` split, in a child process
  (``nemotron.train.evaluate``) so that Megatron's process-wide state never outlives it.
- ``eval=accuracy``: a chat model's answers to a SplitJsonlDataArtifact's ``val`` or ``test``
  prompts, scored with RL's rewards, and its format rate, in a child process
  (``nemotron.rl.generate_eval``). A Megatron checkpoint is exported to Hugging Face format in
  the result's directory first (not logged: the result's input is the checkpoint itself).

The model and data versions are pinned as the result's inputs; the same evaluation again
returns the logged result.
"""

from __future__ import annotations

import json
import math
from typing import Any

from omegaconf import OmegaConf

from nemo_runspec.errors import ConfigError
from nemotron.kit.artifacts import EvalResultArtifact
from nemotron.schemas.steps import EvalStep
from nemotron.stages.step import Input, Output, Produced, receive, run_step, write_resolved_config

MODEL = Input("model", "ModelArtifact", "a model a training step logged")
INPUTS = {"loss": (MODEL, Input("data", "PretrainBlendsArtifact", "the output of `data prep pretrain`")),
          "accuracy": (MODEL, Input("data", "SplitJsonlDataArtifact", "the output of `data prep rl`"))}
RESULT_FILE = "eval.json"


def evaluate(cfg: Any, *, show_progress: bool = True):
    kind = OmegaConf.select(cfg, "eval.kind")
    step = receive(cfg, EvalStep, "evaluation", INPUTS.get(kind, INPUTS["loss"]))
    config, (model, data) = step.typed, step.inputs
    if config.eval.kind == "accuracy":
        return _accuracy(step, model, data, show_progress)
    check_inputs(model, data, config.eval.split)

    def produce(output: Output) -> Produced:
        job = {"checkpoint": str(model.path), "architecture": model.metadata["architecture"],
               "vocab_size": int(model.metadata["vocab_size"]), "blend_path": str(data.fields["blend_path"]),
               "eod_id": data.metadata.get("eod_id"), "pad_id": data.metadata.get("pad_id"),
               "tokenizer_sha256": model.metadata["tokenizer_sha256"], "split": config.eval.split,
               "samples": samples(model, data, config.eval), "eval": step.plain["eval"],
               # The seed the training run built its model with: weights=initial rebuilds that model.
               "init_seed": int(model.metadata.get("config", {}).get("train", {}).get("seed", config.eval.seed)),
               "out": str(output.directory), "result": str(output.directory / RESULT_FILE),
               "show_progress": show_progress}
        write_resolved_config(output.directory, step.plain)
        from nemotron.train.child_process import run_module

        (output.directory / "job.json").write_text(json.dumps(job, indent=1), encoding="utf-8")
        result = run_module("nemotron.train.evaluate", [output.directory / "job.json"],
                            result=output.directory / RESULT_FILE, what="the evaluation")
        artifact = EvalResultArtifact(
            path=output.directory, evaluation="loss", model=model.uri, data=data.uri, split=config.eval.split,
            weights=config.eval.weights,
            loss=result["loss"], perplexity=math.exp(result["loss"]), tokens=result["tokens"],
            sequences=result["sequences"], metadata={"config": step.plain, "model_step": model.fields.get("step")})
        which = model.ref if config.eval.weights == "trained" else f"{model.ref} at initialization"
        return Produced(artifact, f"{config.eval.split} loss {result['loss']:.4f} (perplexity "
                                  f"{artifact.perplexity:.1f}) of {which} over {result['tokens']} tokens")

    return _run(step, model, data, produce)


def _run(step, model, data, produce):
    config = step.typed
    return run_step(step.tracking, EvalResultArtifact, config.run.name, root=config.eval.output_root,
                    identity={"eval": {k: v for k, v in step.plain["eval"].items() if k not in ("device", "output_root")},
                              "inputs": [model.uri, data.uri]},
                    marker=RESULT_FILE, produce=produce, what="evaluation")


def _accuracy(step, model, data, show_progress: bool):
    evaluation = step.typed.eval
    prompts = check_prompts(data, evaluation.split)

    def produce(output: Output) -> Produced:
        from nemotron.train.child_process import run_module

        output.directory.mkdir(parents=True, exist_ok=True)
        write_resolved_config(output.directory, step.plain)
        from nemotron.stages.export import hugging_face_directory

        job = {"model": str(hugging_face_directory(model, output.directory / "hf")), "prompts": prompts, "split": evaluation.split,
               "eval": step.plain["eval"], "out": str(output.directory), "result": str(output.directory / RESULT_FILE),
               "show_progress": show_progress}
        (output.directory / "job.json").write_text(json.dumps(job, indent=1), encoding="utf-8")
        result = run_module("nemotron.rl.generate_eval", [output.directory / "job.json"],
                            result=output.directory / RESULT_FILE, what="the evaluation")
        artifact = EvalResultArtifact(
            path=output.directory, evaluation="accuracy", model=model.uri, data=data.uri, split=evaluation.split,
            accuracy=result["accuracy"], format_rate=result["format_rate"], rewards=result["rewards"],
            prompts=result["prompts"], samples=evaluation.samples, pass_at_k=result.get("pass_at_k"),
            sampled_accuracy=result.get("sampled_accuracy"),
            metadata={"config": step.plain, "model_step": model.fields.get("step"), "completions": result["completions"]})
        passes = f", pass@{evaluation.samples} {result['pass_at_k']:.1%}" if evaluation.samples else ""
        return Produced(artifact, f"{evaluation.split} accuracy {result['accuracy']:.1%}, ends its turn "
                                  f"{result['format_rate']:.1%}{passes} of {model.ref} over {result['prompts']} prompts")

    return _run(step, model, data, produce)


def check_prompts(data, split: str) -> str:
    """The JSONL of a split that holds prompts; a one-line error otherwise."""
    path, count = data.fields.get(f"{split}_path"), int(data.fields.get(f"{split}_count") or 0)
    if not path or not count:
        held = ", ".join(name for name in ("train", "val", "test") if data.fields.get(f"{name}_count")) or "none"
        raise ConfigError(f"{data.ref} has no {split!r} prompts (splits with prompts: {held})",
                          hint="choose eval.split among them, or prepare the data with a held-out split")
    return str(path)


def check_inputs(model, data, split: str) -> None:
    """A Megatron model of the data's tokenizer, and a split that holds sequences; one-line errors."""
    if model.fields.get("format") != "megatron":
        raise ConfigError(f"{model.ref} is a {model.fields.get('format')!r} checkpoint; eval=loss reads Megatron ones",
                          hint="evaluate the Megatron model it was exported from")
    theirs = (data.fields.get("tokenizer") or {}).get("sha256")
    if model.metadata.get("tokenizer_sha256") != theirs:
        raise ConfigError(f"{model.ref} was trained with another tokenizer than {data.ref}'s",
                          hint="evaluate on data prepared with the model's tokenizer")
    if not data.fields.get("split_sequences", {}).get(split):
        held = ", ".join(name for name, count in data.fields.get("split_sequences", {}).items() if count) or "none"
        raise ConfigError(f"{data.ref} has no {split!r} sequences (splits with data: {held})",
                          hint="choose eval.split among them, or prepare the data with a held-out split")


def samples(model, data, evaluation) -> int:
    """Sequences of the model's length to read: ``max_samples``, or all the split holds."""
    seq_length = int(model.metadata["architecture"]["seq_length"])
    tokens = int(data.fields.get("split_tokens", {}).get(evaluation.split, 0))
    return max(1, min(evaluation.max_samples, tokens // seq_length))
