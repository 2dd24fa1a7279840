"""Stage-1 data prep step: a composed config -> a logged SFTDataArtifact."""

from __future__ import annotations

from typing import Any

from nemotron.data.chat import load_template
from nemotron.data.packed_parquet import LABEL_ALIGNMENT
from nemotron.data.sft_prep import SFTSettings, prepare_sft
from nemotron.data.files import file_sha256
from nemotron.data.text_sources import resolve_files
from nemotron.data.tokenizer import load_tokenizer
from nemotron.kit.artifacts import ChatTemplateInfo, PackedSplit, SFTDataArtifact, SourceInfo
from nemotron.schemas.steps import SFTDataStep
from nemotron.stages.step import Output, Produced, receive, run_step

# data_prep keys that change how the output is made, never what it contains.
_NOT_IN_FINGERPRINT = ("output_root", "workers")


def prep_sft(cfg: Any, *, show_progress: bool = True) -> SFTDataArtifact:
    step = receive(cfg, SFTDataStep)
    config, prep = step.typed, step.typed.data_prep
    tokenizer = load_tokenizer(config.tokenizer.path, config.tokenizer.name)
    template = load_template(prep.chat_template, config.tokenizer.path)
    files = [f for spec in prep.blend for f in resolve_files(spec, step.tracking.resolve)]

    def produce(output: Output) -> Produced[SFTDataArtifact]:
        settings = SFTSettings(
            output_dir=str(output.directory), tokenizer_path=config.tokenizer.path, template=template,
            pack_size=prep.pack_size, algorithm=prep.packing, seed=prep.seed, split_ratios=prep.ratios(),
            on_error=prep.on_error, overlong=prep.overlong, packs_per_shard=prep.packs_per_shard, workers=prep.workers,
        )
        outcome = prepare_sft(list(prep.blend), files, settings, show_progress=show_progress)
        split_of = {d.name: d.split for d in prep.blend}
        artifact = SFTDataArtifact(
            path=output.directory,
            pack_size=settings.pack_size,
            num_packs=outcome.num_packs,
            num_sequences=outcome.num_sequences,
            packing_efficiency=round(outcome.packing_efficiency(settings.pack_size), 3),
            splits={split: PackedSplit(path=r.path, num_packs=r.num_packs, num_sequences=r.num_sequences)
                    for split, r in outcome.splits.items()},
            tokenizer=tokenizer.info,
            chat_template=ChatTemplateInfo(name=template.name, sha256=template.sha256),
            sources=[SourceInfo(name=f.dataset, uri=f.input_uri, split=split_of[f.dataset], num_bytes=f.size,
                                sha256=file_sha256(f.path)) for f in files],
            metadata={
                "packing_factor": round(outcome.num_sequences / max(outcome.num_packs, 1), 3),
                "algorithm": settings.algorithm,
                "max_samples_per_bin": max((r.max_sequences_per_pack for r in outcome.splits.values()), default=0),
                "dataset_max_seqlen": max((r.max_sequence_length for r in outcome.splits.values()), default=0),
                "truncated": outcome.truncated,
                "dropped": outcome.dropped,
                "skipped": outcome.skipped,
                "conversations": outcome.conversations,
                "loss_mask_alignment": LABEL_ALIGNMENT,
                **tokenizer.token_ids(),
                "elapsed_s": outcome.elapsed_s,
                "config": step.plain,
            },
        )
        return Produced(artifact, f"{artifact.num_sequences} conversations in {artifact.num_packs} packs of "
                                  f"{artifact.pack_size} ({artifact.packing_efficiency:.1f}% full)")

    return run_step(step.tracking, SFTDataArtifact, config.run.name, root=prep.output_root, identity={
        "prep": {k: v for k, v in step.plain["data_prep"].items() if k not in _NOT_IN_FINGERPRINT},
        "tokenizer": tokenizer.info.sha256,
        "template": template.sha256,
        "sources": [f.stamp() for f in files],
    }, marker="spool/done.json", produce=produce)
