"""Stage-1 data prep step: a composed config -> a logged SFTDataArtifact."""

from __future__ import annotations

import os
from typing import Any

from nemo_runspec.artifacts import log_artifact, setup_artifact_tracking
from nemo_runspec.errors import ConfigError
from nemo_runspec.hydra_app import to_plain
from nemotron.data.chat import load_template
from nemotron.data.pretrain_prep import split_ratios
from nemotron.data.sft_prep import LABEL_ALIGNMENT, SFTSettings, prepare_sft
from nemotron.data.text_sources import file_sha256, resolve_files
from nemotron.data.tokenizer import load_tokenizer
from nemotron.kit.artifacts import ChatTemplateInfo, PackedSplit, SFTDataArtifact, SourceInfo
from nemotron.stages import outputs
from nemotron.stages.pretrain_data import _datasets

# data_prep keys that change how the output is made, never what it contains.
_NOT_IN_FINGERPRINT = ("output_root", "workers")  # the output does not depend on them


def prep_sft(cfg: Any, *, show_progress: bool = True) -> SFTDataArtifact:
    tracking = setup_artifact_tracking(cfg)
    config = to_plain(cfg)
    prep, name = config["data_prep"], config["run"]["name"]
    numbers = {key: _integer(prep, key) for key in ("pack_size", "seed", "packs_per_shard", "workers")}
    datasets = _datasets(prep["blend"])
    tokenizer = load_tokenizer(str(config["tokenizer"]["path"]), config["tokenizer"].get("name"))
    template = load_template(str(prep["chat_template"]), config["tokenizer"]["path"])
    files = [f for spec in datasets for f in resolve_files(spec, tracking.resolve)]
    output_dir, fingerprint = outputs.output_dir(prep["output_root"], name, {
        "prep": {k: v for k, v in prep.items() if k not in _NOT_IN_FINGERPRINT},
        "tokenizer": tokenizer.info.sha256,
        "template": template.sha256,
        "sources": [(f.path, f.size, os.stat(f.path).st_mtime_ns) for f in files],
    })
    existing = outputs.already_logged(SFTDataArtifact, name, output_dir, fingerprint, "spool/done.json")
    if existing is not None:
        print(f"{existing.name}:v{existing.version} already holds this output ({output_dir}); nothing to do")
        return existing

    settings = SFTSettings(
        output_dir=str(output_dir), tokenizer_path=str(config["tokenizer"]["path"]), template=template,
        pack_size=numbers["pack_size"], algorithm=prep["packing"], seed=numbers["seed"],
        split_ratios=split_ratios(prep["splits"]), on_error=prep["on_error"], overlong=prep["overlong"],
        packs_per_shard=numbers["packs_per_shard"], workers=numbers["workers"],
    )
    outcome = prepare_sft(datasets, files, settings, show_progress=show_progress)
    artifact = SFTDataArtifact(
        path=output_dir,
        pack_size=settings.pack_size,
        num_packs=outcome.num_packs,
        num_sequences=outcome.num_sequences,
        packing_efficiency=round(outcome.packing_efficiency(settings.pack_size), 3),
        splits={split: PackedSplit(path=r.path, num_packs=r.num_packs, num_sequences=r.num_sequences)
                for split, r in outcome.splits.items()},
        tokenizer=tokenizer.info,
        chat_template=ChatTemplateInfo(name=template.name, sha256=template.sha256),
        sources=[SourceInfo(name=f.dataset, uri=f.input_uri, split=next(d.split for d in datasets if d.name == f.dataset),
                            num_bytes=f.size, sha256=file_sha256(f.path)) for f in files],
        metadata={
            "fingerprint": fingerprint,
            "packing_factor": round(outcome.num_sequences / max(outcome.num_packs, 1), 3),
            "algorithm": settings.algorithm,
            "max_samples_per_bin": max((r.max_sequences_per_pack for r in outcome.splits.values()), default=0),
            "dataset_max_seqlen": max((r.max_sequence_length for r in outcome.splits.values()), default=0),
            "truncated": outcome.truncated,
            "dropped": outcome.dropped,
            "skipped": outcome.skipped,
            "conversations": outcome.conversations,
            "loss_mask_alignment": LABEL_ALIGNMENT,
            "eod_id": tokenizer.eod_id,
            "pad_id": tokenizer.pad_id,
            "elapsed_s": outcome.elapsed_s,
            "config": config,
        },
    )
    log_artifact(artifact, tracking, name=name)
    print(f"logged {artifact.name}:v{artifact.version}: {artifact.num_sequences} conversations in "
          f"{artifact.num_packs} packs of {artifact.pack_size} ({artifact.packing_efficiency:.1f}% full) -> {output_dir}")
    return artifact


def _integer(prep: dict[str, Any], key: str) -> int:
    value = prep.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).lstrip("-").isdigit():
        raise ConfigError(f"data_prep.{key} must be an integer, got {value!r}")
    return int(value)
