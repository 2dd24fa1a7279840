"""Stage-0 data prep step: a composed config -> a logged PretrainBlendsArtifact.

The output directory is ``<output_root>/<run.name>/<fingerprint>``, where the fingerprint
covers everything the bytes depend on (blend, splits, shards, special tokens, tokenizer
digest, source sizes and mtimes) and nothing they don't (workers, batch size). A re-run with
the same inputs finds the same directory: it resumes an interrupted run, and when the latest
version of the name already describes that output, it returns it instead of logging a copy.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import ValidationError

from nemo_runspec.artifacts import log_artifact, setup_artifact_tracking
from nemo_runspec.errors import ConfigError
from nemo_runspec.hydra_app import to_plain
from nemotron.data.pretrain_prep import PrepOutcome, TokenizeSettings, finalize_blend, plan, prepare, split_ratios
from nemotron.data.text_sources import DatasetSpec
from nemotron.data.tokenizer import load_tokenizer
from nemotron.kit.artifacts import PretrainBlendsArtifact
from nemotron.stages import outputs

# data_prep keys that change how fast the output is made, never what it contains.
_NOT_IN_FINGERPRINT = ("workers", "batch_docs", "output_root", "slice")


def prep_pretrain(cfg: Any, *, show_progress: bool = True) -> PretrainBlendsArtifact | None:
    """Run stage-0 data prep for ``cfg``; None when this job is a slice that does not finalize."""
    from omegaconf import OmegaConf

    tracking = setup_artifact_tracking(cfg)
    config = to_plain(cfg)
    prep = config["data_prep"]
    if prep.get("on_error") not in ("fail", "skip"):
        raise ConfigError(f"data_prep.on_error must be 'fail' or 'skip', got {prep.get('on_error')!r}")
    datasets = _datasets(prep["blend"])
    tokenizer = load_tokenizer(str(config["tokenizer"]["path"]), config["tokenizer"].get("name"))
    units, files = plan(datasets, int(prep["shards_per_dataset"]), tracking.resolve)
    output_dir, fingerprint = outputs.output_dir(prep["output_root"], config["run"]["name"], {
        "prep": {k: v for k, v in prep.items() if k not in _NOT_IN_FINGERPRINT},
        "tokenizer": tokenizer.info.sha256,
        "sources": [(f.path, f.size, os.stat(f.path).st_mtime_ns) for f in files],
    })
    existing = outputs.already_logged(PretrainBlendsArtifact, config["run"]["name"], output_dir, fingerprint, "blend.json")
    if existing is not None:
        print(f"{existing.name}:v{existing.version} already holds this output ({output_dir}); nothing to do")
        return existing

    settings = TokenizeSettings(
        output_dir=str(output_dir),
        tokenizer_path=str(config["tokenizer"]["path"]),
        split_ratios=split_ratios(prep["splits"]),
        on_error=prep["on_error"],
        batch_docs=int(prep["batch_docs"]),
        add_bos=bool(prep["add_bos"]),
        append_eod=bool(prep["append_eod"]),
    )
    slice_ = prep.get("slice") or {}
    count, index = int(slice_.get("count", 1)), int(slice_.get("index", 0))
    finalize_only = bool(slice_.get("finalize", False))
    if finalize_only:
        outcome = PrepOutcome(output_dir, None, len(units), 0, len(units))
        finalize_blend(outcome, units, files)
    else:
        outcome = prepare(
            units, files, settings, workers=int(prep["workers"]), slice_count=count, slice_index=index,
            finalize=count == 1, show_progress=show_progress,
        )
    if outcome.blend_path is None:
        print(f"slice {index}/{count}: {outcome.units_run} units prepared in {output_dir}; "
              f"run with --finalize once every slice is done")
        return None
    (output_dir / "resolved_config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(config)), encoding="utf-8")
    artifact = PretrainBlendsArtifact(
        path=output_dir,
        blend_path=outcome.blend_path,
        total_tokens=sum(outcome.split_tokens.values()),
        total_sequences=sum(outcome.split_documents.values()),
        num_shards=outcome.num_shards,
        split_tokens=outcome.split_tokens,
        split_sequences=outcome.split_documents,
        tokenizer=tokenizer.info,
        sources=outcome.sources,
        metadata={
            "fingerprint": fingerprint,
            "skipped": outcome.skipped,
            "units": outcome.units_total,
            "units_reused": outcome.units_reused,
            "elapsed_s": round(outcome.elapsed_s, 3),
            "docs_per_s": round(outcome.documents / max(outcome.elapsed_s, 1e-9), 1),
            "tokens_per_s": round(outcome.tokens / max(outcome.elapsed_s, 1e-9), 1),
            "eod_id": tokenizer.eod_id,
            "pad_id": tokenizer.pad_id,
            "config": config,
        },
    )
    log_artifact(artifact, tracking, name=config["run"]["name"])
    print(f"logged {artifact.name}:v{artifact.version}: {artifact.total_tokens} tokens in "
          f"{artifact.num_shards} shards ({outcome.elapsed_s:.1f} s) -> {output_dir}")
    return artifact


def _datasets(blend: Any) -> list[DatasetSpec]:
    if not isinstance(blend, list):
        raise ConfigError(f"data_prep.blend must be a list of datasets, got {type(blend).__name__}")
    datasets = []
    for i, entry in enumerate(blend):
        try:
            datasets.append(DatasetSpec.model_validate(entry))
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"data_prep.blend[{i}].{where}: {first['msg']} (got {first.get('input')!r})") from None
    return datasets


