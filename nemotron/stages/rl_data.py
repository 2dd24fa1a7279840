"""Stage-2 data prep step: a composed config -> a logged SplitJsonlDataArtifact.

The output directory's fingerprint covers the data_prep settings, the record schema version
and the sources (paths, sizes, mtimes). A rerun with the same inputs returns the version that
already describes that directory.
"""

from __future__ import annotations

from typing import Any

from nemotron.data.rl_prep import MANIFEST, RLSettings, prepare_rl
from nemotron.data.rl_records import SCHEMA, SCHEMA_VERSION
from nemotron.data.text_sources import resolve_files
from nemotron.kit.artifacts import SourceInfo, SplitJsonlDataArtifact
from nemotron.schemas.steps import RLDataStep
from nemotron.stages.step import Output, Produced, receive, run_step

# data_prep keys that change where the output goes, never what it contains.
_NOT_IN_FINGERPRINT = ("output_root",)


def prep_rl(cfg: Any, *, show_progress: bool = True) -> SplitJsonlDataArtifact:
    step = receive(cfg, RLDataStep)
    config, prep = step.typed, step.typed.data_prep
    files = [f for spec in prep.blend for f in resolve_files(spec, step.tracking.resolve)]

    def produce(output: Output) -> Produced[SplitJsonlDataArtifact]:
        settings = RLSettings(output_dir=str(output.directory), splits=prep.split_spec(), seed=prep.seed,
                              on_error=prep.on_error)
        outcome = prepare_rl(list(prep.blend), files, settings, show_progress=show_progress)
        sources, splits = outcome.manifest["sources"], outcome.splits
        artifact = SplitJsonlDataArtifact(
            path=output.directory,
            train_path=splits["train"].path,
            val_path=splits["val"].path,
            test_path=splits["test"].path,
            train_count=splits["train"].count,
            val_count=splits["val"].count,
            test_count=splits["test"].count,
            sources=[SourceInfo(name=s["dataset"], uri=s["uri"], split=s["split"], num_bytes=s["num_bytes"],
                                sha256=s["sha256"]) for s in sources],
            manifest_path=outcome.manifest_path,
            record_schema=f"{SCHEMA}/v{SCHEMA_VERSION}",
            metadata={
                "schema": f"{SCHEMA}/v{SCHEMA_VERSION}",
                "fields": outcome.manifest["fields"],
                "records_read": outcome.records_read,
                "kept": outcome.kept,
                "duplicates": outcome.duplicates,
                "same_prompt": outcome.same_prompt,
                "skipped": outcome.skipped,
                "prompts": {split: f.prompts for split, f in splits.items()},
                "files": outcome.manifest["files"],
                "seed": outcome.manifest["seed"],
                "splits": outcome.manifest["splits"],
                "sources": sources,
                "elapsed_s": outcome.elapsed_s,
                "config": step.plain,
            },
        )
        return Produced(artifact, f"{artifact.train_count} train / {artifact.val_count} val / {artifact.test_count} "
                                  f"test prompts ({outcome.duplicates} duplicates dropped, "
                                  f"{sum(outcome.skipped.values())} skipped)")

    return run_step(step.tracking, SplitJsonlDataArtifact, config.run.name, root=prep.output_root, identity={
        "prep": {k: v for k, v in step.plain["data_prep"].items() if k not in _NOT_IN_FINGERPRINT},
        "schema": [SCHEMA, SCHEMA_VERSION],
        "sources": [f.stamp() for f in files],
    }, marker=MANIFEST, produce=produce)
