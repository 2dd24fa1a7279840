"""``nemotron <family> model import STAGE PATH``: a checkpoint made elsewhere -> a ModelArtifact.

The checkpoint's layout is detected (:mod:`.checkpoints`); ``--step`` sets or overrides the
step, and without one a checkpoint that records none is refused. The artifact's directory
links the checkpoint's files, so ``${art:model,path}/model`` is the dist_checkpointing
directory whatever the layout; for a distributed checkpoint without our ``trainer.json``, it
holds a ``trainer.json`` that records the step only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nemo_runspec.errors import ConfigError
from nemotron.stages.imports.checkpoints import EXPECTED_MODEL, Checkpoint, find_checkpoint
from nemotron.stages.imports.options import check_stage, load_tokenizer
from nemotron.stages.imports.output import MARKER, link_directory, models_root, tracking_for
from nemotron.stages.imports.paths import check_tree, non_empty_dir, resolve
from nemotron.stages.step import Output, Produced, run_step

ARCHITECTURE_SUBSET = ("trainer.json: only the fields a checkpoint must match to load (nemotron.schemas.model.architecture_of), "
                       "a subset of the model config (no seq_length, rotary_base, requires_gpu)")
ARCHITECTURE_FULL = "job.json: the full model config of the run that wrote the checkpoint"


def import_model(family: str, stage: str, path: str | os.PathLike[str], *, step: int | None = None,
                 name: str | None = None, tokenizer: str | None = None, root: str | os.PathLike[str] | None = None):
    """Log the checkpoint at ``path`` as a ModelArtifact of ``stage``; return the artifact."""
    from nemotron.kit.artifacts import ModelArtifact

    check_stage(stage)
    name = name or f"{family}-{stage}-model-imported"
    tracking = tracking_for(root, name, "ModelArtifact")
    given, resolved = resolve(path)
    non_empty_dir(resolved, given, EXPECTED_MODEL)
    listing = check_tree(resolved)
    checkpoint = find_checkpoint(resolved)
    if checkpoint.directory != resolved:  # one iteration of checkpoints/, or the iter_N above model/
        listing = check_tree(checkpoint.directory)
    if step is None and checkpoint.step is None:
        raise ConfigError(f"{given}: the checkpoint records no step ({checkpoint.layout})",
                          hint="give it with --step N")
    metadata: dict[str, Any] = {"imported_from": str(given), "source_checkpoint": str(checkpoint.directory),
                                "layout": checkpoint.layout, **checkpoint.info}
    if step is not None:
        if checkpoint.step is not None and checkpoint.step != step:
            metadata["recorded_step"] = checkpoint.step
        checkpoint.step, checkpoint.step_source = step, "--step"
    metadata["step_source"] = checkpoint.step_source
    metadata.update(_architecture(checkpoint))
    metadata.update(_tokenizer(checkpoint, tokenizer, given))

    files = {}
    if checkpoint.format == "megatron" and "trainer.json" not in checkpoint.links:
        files["trainer.json"] = json.dumps({"step": checkpoint.step, "imported_from": str(given),
                                            "note": "written by `model import`: the checkpoint records no trainer "
                                                    "state of ours; only the step is known"}, indent=1)

    def produce(out: Output) -> Produced:
        link_directory(out.directory, checkpoint.links, files)
        artifact = ModelArtifact(path=out.directory, stage=stage, step=checkpoint.step, format=checkpoint.format,
                                 metadata=metadata)
        return Produced(artifact, f"{checkpoint.format} checkpoint ({checkpoint.layout}), stage {stage}, "
                                  f"step {checkpoint.step}, imported from {given}")

    identity = {"kind": "model", "stage": stage, "source": str(checkpoint.directory), "files": listing,
                "step": checkpoint.step, "tokenizer": metadata.get("tokenizer_sha256")}
    return run_step(tracking, ModelArtifact, name, root=models_root(), identity=identity, marker=MARKER,
                    produce=produce, what="import")


def _architecture(checkpoint: Checkpoint) -> dict[str, Any]:
    """``architecture`` from our trainer.json (a subset of the model config), or the full model
    config from the run's job.json when that agrees with it."""
    recorded = (checkpoint.trainer or {}).get("architecture")
    if not isinstance(recorded, dict):
        return {}
    job = _run_job(checkpoint.directory)
    model = job.get("model") if isinstance(job.get("model"), dict) else None
    if model and all(model.get(k) == v for k, v in recorded.items()):
        return {"architecture": model, "architecture_source": ARCHITECTURE_FULL}
    return {"architecture": recorded, "architecture_source": ARCHITECTURE_SUBSET}


def _run_job(iteration: Path) -> dict[str, Any]:
    """``<run_dir>/job.json`` of one of our checkpoints (``<run_dir>/checkpoints/iter_N``)."""
    file = iteration.parent.parent / "job.json"
    if iteration.parent.name != "checkpoints" or not file.is_file():
        return {}
    try:
        job = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return job if isinstance(job, dict) else {}


def _tokenizer(checkpoint: Checkpoint, option: str | None, given: Path) -> dict[str, Any]:
    """vocab_size / tokenizer_sha256: from --tokenizer (checked against what the checkpoint
    records), else from our run's job.json."""
    recorded = _run_job(checkpoint.directory).get("data") if checkpoint.trainer is not None else None
    recorded = recorded if isinstance(recorded, dict) else {}
    if option is None:
        if recorded.get("tokenizer_sha256") and recorded.get("vocab_size"):
            return {"vocab_size": recorded["vocab_size"], "tokenizer_sha256": recorded["tokenizer_sha256"],
                    "tokenizer_source": "job.json"}
        return {}
    loaded = load_tokenizer(option)
    if recorded.get("tokenizer_sha256") and recorded["tokenizer_sha256"] != loaded.info.sha256:
        raise ConfigError(f"tokenizer {loaded.info.path} is not the one {given} was trained with "
                          f"(sha256 {loaded.info.sha256[:12]}..., trained with {recorded['tokenizer_sha256'][:12]}...)",
                          hint="pass the tokenizer the model was trained with, or leave --tokenizer out")
    hf_vocab = checkpoint.info.get("hf_config", {}).get("vocab_size")
    if isinstance(hf_vocab, int) and loaded.vocab_size > hf_vocab:
        raise ConfigError(f"tokenizer {loaded.info.path} has {loaded.vocab_size} tokens, more than the model's "
                          f"vocab_size {hf_vocab} (config.json)", hint="pass the tokenizer the model was trained with")
    return {"vocab_size": loaded.vocab_size, "tokenizer_sha256": loaded.info.sha256, "tokenizer_path": loaded.info.path,
            "eod_id": loaded.eod_id, "pad_id": loaded.pad_id}
