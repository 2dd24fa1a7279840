"""Stage-0 data prep step: a composed config -> a logged PretrainBlendsArtifact.

The output directory's fingerprint covers everything the bytes depend on (blend, splits,
shards, special tokens, tokenizer digest, source sizes and mtimes) and nothing they don't
(workers, batch size). A re-run with the same inputs finds the same directory: it resumes an
interrupted run, and a version that already describes that output is returned, not copied.
"""

from __future__ import annotations

from typing import Any

from nemotron.data.pretrain_prep import PrepOutcome, TokenizeSettings, finalize_blend, plan, prepare
from nemotron.data.tokenizer import load_tokenizer
from nemotron.kit.artifacts import PretrainBlendsArtifact
from nemotron.schemas.steps import PretrainDataStep
from nemotron.stages.step import Output, Produced, receive, run_step, write_resolved_config

# data_prep keys that change how fast the output is made, never what it contains.
_NOT_IN_FINGERPRINT = ("workers", "batch_docs", "output_root", "slice")


def prep_pretrain(cfg: Any, *, show_progress: bool = True) -> PretrainBlendsArtifact | None:
    """Run stage-0 data prep for ``cfg``; None when this job is a slice that does not finalize."""
    step = receive(cfg, PretrainDataStep)
    config, prep = step.typed, step.typed.data_prep
    tokenizer = load_tokenizer(config.tokenizer.path, config.tokenizer.name)
    units, files = plan(list(prep.blend), prep.shards_per_dataset, step.tracking.resolve)

    def produce(output: Output) -> Produced[PretrainBlendsArtifact] | None:
        settings = TokenizeSettings(
            output_dir=str(output.directory), tokenizer_path=config.tokenizer.path, split_ratios=prep.ratios(),
            on_error=prep.on_error, batch_docs=prep.batch_docs, add_bos=prep.add_bos, append_eod=prep.append_eod,
        )
        count, index = prep.slice.count, prep.slice.index
        if prep.slice.finalize:
            outcome = PrepOutcome(output.directory, None, len(units), 0, len(units))
            finalize_blend(outcome, units, files, settings.split_ratios)
        else:
            outcome = prepare(units, files, settings, workers=prep.workers, slice_count=count, slice_index=index,
                              finalize=count == 1, show_progress=show_progress)
        if outcome.blend_path is None:
            print(f"slice {index}/{count}: {outcome.units_run} units prepared in {output.directory}; "
                  f"run with --finalize once every slice is done")
            return None
        write_resolved_config(output.directory, step.plain)
        artifact = PretrainBlendsArtifact(
            path=output.directory,
            blend_path=outcome.blend_path,
            total_tokens=sum(outcome.split_tokens.values()),
            total_sequences=sum(outcome.split_documents.values()),
            num_shards=outcome.num_shards,
            split_tokens=outcome.split_tokens,
            split_sequences=outcome.split_documents,
            tokenizer=tokenizer.info,
            sources=outcome.sources,
            metadata={
                "skipped": outcome.skipped,
                "units": outcome.units_total,
                "units_reused": outcome.units_reused,
                "elapsed_s": round(outcome.elapsed_s, 3),
                "docs_per_s": round(outcome.documents / max(outcome.elapsed_s, 1e-9), 1),
                "tokens_per_s": round(outcome.tokens / max(outcome.elapsed_s, 1e-9), 1),
                **tokenizer.token_ids(),
                "config": step.plain,
            },
        )
        return Produced(artifact, f"{artifact.total_tokens} tokens in {artifact.num_shards} shards "
                                  f"({outcome.elapsed_s:.1f} s)")

    return run_step(step.tracking, PretrainBlendsArtifact, config.run.name, root=prep.output_root, identity={
        "prep": {k: v for k, v in step.plain["data_prep"].items() if k not in _NOT_IN_FINGERPRINT},
        "tokenizer": tokenizer.info.sha256,
        "sources": [f.stamp() for f in files],
    }, marker="blend.json", produce=produce)

