"""Stage-2 data prep step: a composed config -> a logged SplitJsonlDataArtifact.

The output directory is ``<output_root>/<run.name>/<fingerprint>``; the fingerprint covers the
data_prep settings, the record schema version and the sources (paths, sizes, mtimes). A rerun
with the same inputs returns the version that already describes that directory.
"""

from __future__ import annotations

import os
from typing import Any

from nemo_runspec.artifacts import log_artifact, setup_artifact_tracking
from nemo_runspec.hydra_app import to_plain
from nemotron.data.rl_prep import MANIFEST, SCHEMA, SCHEMA_VERSION, RLSettings, prepare_rl, split_spec
from nemotron.data.text_sources import resolve_files
from nemotron.kit.artifacts import SourceInfo, SplitJsonlDataArtifact
from nemotron.stages import outputs
from nemotron.stages.pretrain_data import _datasets

# data_prep keys that change where the output goes, never what it contains.
_NOT_IN_FINGERPRINT = ("output_root",)


def prep_rl(cfg: Any, *, show_progress: bool = True) -> SplitJsonlDataArtifact:
    tracking = setup_artifact_tracking(cfg)
    config = to_plain(cfg)
    prep, name = config["data_prep"], config["run"]["name"]
    settings_args = {"splits": split_spec(prep["splits"]), "seed": prep["seed"], "on_error": prep["on_error"]}
    RLSettings(output_dir="", **settings_args).check()
    datasets = _datasets(prep["blend"])
    files = [f for spec in datasets for f in resolve_files(spec, tracking.resolve)]
    output_dir, fingerprint = outputs.output_dir(prep["output_root"], name, {
        "prep": {k: v for k, v in prep.items() if k not in _NOT_IN_FINGERPRINT},
        "schema": [SCHEMA, SCHEMA_VERSION],
        "sources": [(f.path, f.size, os.stat(f.path).st_mtime_ns) for f in files],
    })
    existing = outputs.already_logged(SplitJsonlDataArtifact, name, output_dir, fingerprint, MANIFEST)
    if existing is not None:
        print(f"{existing.name}:v{existing.version} already holds this output ({output_dir}); nothing to do")
        return existing

    outcome = prepare_rl(datasets, files, RLSettings(output_dir=str(output_dir), **settings_args),
                         show_progress=show_progress)
    sources = outcome.manifest["sources"]
    artifact = SplitJsonlDataArtifact(
        path=output_dir,
        train_path=outcome.splits["train"].path,
        val_path=outcome.splits["val"].path,
        test_path=outcome.splits["test"].path,
        train_count=outcome.splits["train"].count,
        val_count=outcome.splits["val"].count,
        test_count=outcome.splits["test"].count,
        sources=[SourceInfo(name=s["dataset"], uri=s["uri"], split=s["split"], num_bytes=s["num_bytes"],
                            sha256=s["sha256"]) for s in sources],
        manifest_path=outcome.manifest_path,
        record_schema=f"{SCHEMA}/v{SCHEMA_VERSION}",
        metadata={
            "fingerprint": fingerprint,
            "schema": f"{SCHEMA}/v{SCHEMA_VERSION}",
            "fields": outcome.manifest["fields"],
            "records_read": outcome.records_read,
            "kept": outcome.kept,
            "duplicates": outcome.duplicates,
            "same_prompt": outcome.same_prompt,
            "skipped": outcome.skipped,
            "prompts": {split: f.prompts for split, f in outcome.splits.items()},
            "files": outcome.manifest["files"],
            "seed": outcome.manifest["seed"],
            "splits": outcome.manifest["splits"],
            "sources": sources,
            "elapsed_s": outcome.elapsed_s,
            "config": config,
        },
    )
    log_artifact(artifact, tracking, name=name)
    print(f"logged {artifact.name}:v{artifact.version}: {artifact.train_count} train / {artifact.val_count} val / "
          f"{artifact.test_count} test prompts ({outcome.duplicates} duplicates dropped, "
          f"{sum(outcome.skipped.values())} skipped) -> {output_dir}")
    return artifact
