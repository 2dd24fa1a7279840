"""``nemotron artifact reproduce``: rebuild a version from what its record holds, compare its files.

The record holds the step's resolved config (``metadata.config``, whose ``stage`` names the
step) or, for an import, the imported path and options; its inputs are pinned to versions,
its sources carry digests, and ``contents`` is the manifest of the files it was published
with. A reproduction runs that step again into a scratch directory and a scratch registry,
reading every input at its pinned version, then compares the new manifest with the recorded
one. CPU data prep and CPU training with fixed seeds are deterministic, so ``identical`` is
the expected answer; any difference names the files.

With ``log=True`` the step runs for real (the config's own output roots and registry, inputs
still pinned): a version whose data gc deleted is rebuilt where it was and logged again.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemo_runspec import contents
from nemo_runspec.artifacts import ArtifactTracking, using_tracking
from nemo_runspec.env import exported
from nemo_runspec.errors import ArtifactNotFoundError, ConfigError, NemotronError
from nemo_runspec.provenance import current_code_version
from nemo_runspec.refs import ArtifactRef, is_artifact_ref
from nemo_runspec.registry.manifest import ManifestRegistry
from nemo_runspec.registry.record import ArtifactRecord

# The config keys that say where a step writes: a reproduction points them at its scratch dir.
_OUTPUT_ROOTS = ("data_prep.output_root", "train.output_root", "rl.output_root", "eval.output_root")
_RELOCATABLE_MAX_BYTES = 64 << 20  # files compared with their directory rewritten are read whole
_IMPORT_STAGE = {"PretrainBlendsArtifact": "pretrain", "SFTDataArtifact": "sft", "SplitJsonlDataArtifact": "rl"}


@dataclass
class Reproduction:
    original: ArtifactRecord
    rebuilt: ArtifactRecord | None = None
    differences: list[contents.Difference] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    relocated: list[str] = field(default_factory=list)  # equal once the rebuild's directory reads as the original's
    note: str | None = None  # why nothing was compared

    @property
    def identical(self) -> bool:
        return self.rebuilt is not None and not self.differences


class PinnedTracking(ArtifactTracking):
    """A tracking whose reads of the pinned names come from ``source`` at the pinned versions."""

    def __init__(self, registry: ManifestRegistry, source: ManifestRegistry, pins: dict[str, int],
                 mirrors: list | None = None):
        super().__init__(registry=registry, mirrors=list(mirrors or []))
        self.source, self.pins = source, pins

    def _resolve_uncached(self, ref: ArtifactRef) -> ArtifactRecord:
        if ref.name in self.pins:
            return self.source.read_version(ref.name, self.pins[ref.name])
        try:
            return super()._resolve_uncached(ref)
        except ArtifactNotFoundError:
            # What a step looks up beyond its inputs (an SFT model's training data, for the
            # tokenizer its HF copy needs) is where the original's inputs live.
            return self.source.resolve(ref)


def reproduce(tracking: ArtifactTracking, ref: str, *, log: bool = False, show_progress: bool = True) -> Reproduction:
    original = tracking.resolve(ref, deleted_ok=True)
    if original.contents is None:
        raise ConfigError(f"{original.uri} records no content manifest (published before digests): nothing to "
                          "compare a rebuild with")
    result = Reproduction(original, warnings=[*_code_warnings(original), *_source_warnings(original)])
    pins = _pins(original)
    existing = tracking.registry.latest_version(original.name)
    with _workdir(log) as scratch:
        registry = tracking.registry if log else ManifestRegistry(scratch / "registry")
        pinned = PinnedTracking(registry, tracking.registry, pins, tracking.mirrors if log else None)  # W&B sees --log only
        try:
            with using_tracking(pinned), exported(_run_env(original, None if log else scratch)):
                artifact = _rerun(original, None if log else scratch, show_progress)
        except NemotronError as err:
            raise NemotronError(f"{original.ref} did not reproduce: its step failed: {err}", hint=err.hint) from err
        rebuilt = pinned.registry.read_version(artifact.name, artifact.version)
        if log and rebuilt.version <= existing:  # the step found its output already logged
            result.note = (f"{rebuilt.ref} already holds this output ({rebuilt.path}): nothing was rebuilt; "
                           f"`nemotron artifact verify {original.ref} --content` checks it")
            return result
        result.rebuilt = rebuilt
        found = (contents.differences_between(original.contents, rebuilt.contents) if rebuilt.contents else
                 [contents.Difference("missing", "*", "the rebuild has no content manifest")])
        result.differences = [d for d in found
                              if not _same_but_for_location(d, original, rebuilt, result)]
    return result


def _rerun(record: ArtifactRecord, scratch: Path | None, show_progress: bool):
    config = record.metadata.get("config")
    if isinstance(config, dict) and isinstance(config.get("stage"), str):
        return _rerun_step(config, scratch, show_progress)
    if record.metadata.get("imported_from"):
        return _reimport(record, scratch)
    raise ConfigError(f"{record.uri} ({record.type}) records neither the config of the step that made it nor an "
                      f"import: it cannot be rebuilt", hint="reproduce works on data preps, trainings, evaluations "
                                                            "and imports")


def _rerun_step(config: dict[str, Any], scratch: Path | None, show_progress: bool):
    from omegaconf import OmegaConf

    from nemotron.stages.steps import step_named

    step = step_named(config["stage"])
    cfg = OmegaConf.create(config)
    if scratch is None:
        return step.function()(cfg, show_progress=show_progress)
    # The step runs from the scratch directory, so the usual relative output roots land there
    # and the config it writes beside its output reads as the original's; an absolute root
    # must be moved (and the resolved_config.yaml written beside the output differs by it).
    for key in _OUTPUT_ROOTS:
        if (value := OmegaConf.select(cfg, key)) is not None and Path(str(value)).is_absolute():
            OmegaConf.update(cfg, key, str(scratch / key.split(".")[0]))
    with _working_directory(scratch):
        return step.function()(cfg, show_progress=show_progress)


def _reimport(record: ArtifactRecord, scratch: Path | None):
    from nemotron.stages.imports import import_data, import_model

    source, root = record.metadata["imported_from"], str(scratch / "registry") if scratch else None
    tokenizer = (record.fields.get("tokenizer") or {}).get("path") or record.metadata.get("tokenizer_path")
    if record.type == "ModelArtifact":
        return import_model("reproduce", record.fields["stage"], source, step=record.fields.get("step"),
                            name=record.name, tokenizer=tokenizer, root=root)
    return import_data("reproduce", _IMPORT_STAGE[record.type], source, name=record.name, tokenizer=tokenizer,
                       chat_template=record.metadata.get("chat_template_path"), root=root)


def _same_but_for_location(difference: contents.Difference, original: ArtifactRecord, rebuilt: ArtifactRecord,
                           result: Reproduction) -> bool:
    """Whether a differing file is the original once the rebuild's directory is written as the
    original's: a blend.json names its shards by absolute path, so a rebuild elsewhere names
    its own. The original file must still hold its recorded digest for this to count."""
    if difference.kind not in ("size", "digest") or not (original.owned_dir and rebuilt.owned_dir):
        return False
    old_file, new_file = Path(original.path) / difference.path, Path(rebuilt.path) / difference.path
    recorded = next(e for e in original.contents.files if e.path == difference.path)
    if recorded.size > _RELOCATABLE_MAX_BYTES or not old_file.is_file():
        return False
    old_bytes = old_file.read_bytes()
    if contents.digest_bytes(old_bytes) != recorded.digest:
        return False
    moved = new_file.read_bytes().replace(rebuilt.owned_dir.encode(), original.owned_dir.encode())
    if moved != old_bytes:
        return False
    result.relocated.append(difference.path)
    return True


def _pins(record: ArtifactRecord) -> dict[str, int]:
    pins = {}
    for uri in record.inputs:
        if is_artifact_ref(uri) and (ref := ArtifactRef.parse(uri)).version is not None:
            pins[ref.name] = ref.version
    return pins


def _code_warnings(record: ArtifactRecord) -> list[str]:
    then, now = record.code_version or {}, current_code_version()
    if not then or now is None:
        return []
    if then.get("git_sha") != now.git_sha:
        return [f"{record.ref} was made by code {then.get('git_sha', '?')[:12]}, this is {now.git_sha[:12]}: "
                f"a difference may come from the code"]
    if now.dirty or then.get("dirty"):
        return [f"the working tree {'is' if now.dirty else 'was'} modified (code {now.git_sha[:12]}): a difference "
                f"may come from uncommitted code"]
    return []


def _source_warnings(record: ArtifactRecord) -> list[str]:
    from nemotron.data.files import file_sha256

    warnings = []
    for source in record.fields.get("sources") or []:
        path, recorded = Path(str(source.get("uri", ""))), source.get("sha256")
        if not recorded or "://" in str(path):
            continue
        if not path.is_file():
            warnings.append(f"source {path} is gone")
        elif (now := file_sha256(path)) != recorded:
            warnings.append(f"source {path} changed since {record.ref} was made (sha256 {recorded[:12]} -> {now[:12]})")
    return warnings


@contextmanager
def _workdir(log: bool) -> Iterator[Path]:
    if log:
        yield Path.cwd()
        return
    scratch = Path(tempfile.mkdtemp(prefix="nemotron-reproduce-"))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def _working_directory(directory: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(before)


def _run_env(record: ArtifactRecord, scratch: Path | None) -> dict[str, str]:
    """What the rerun's environment must say: imports read their output roots from it
    (NEMOTRON_DATA_ROOT, NEMOTRON_RUNS_ROOT), and a CPU training runs with the torch threads the
    original ran with, since a CPU matmul's sums depend on them."""
    env = {}
    if scratch is not None:
        env.update(NEMOTRON_DATA_ROOT=str(scratch / "data"), NEMOTRON_RUNS_ROOT=str(scratch / "runs"))
    if isinstance(threads := record.metadata.get("cpu_threads"), int):
        env["OMP_NUM_THREADS"] = str(threads)
    return env
