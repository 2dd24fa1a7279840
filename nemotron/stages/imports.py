"""Import steps: checkpoints and data made elsewhere -> typed artifacts.

``nemotron <family> model import STAGE PATH`` and ``nemotron <family> data import STAGE PATH``
check that PATH has a layout the pipeline can read, compute what the artifact type records,
and log it. Everything is checked before anything is written or logged: a bad input is one
``NemotronError`` line (missing path, empty folder, unexpected layout with what was found,
a symlink that escapes PATH or loops, a corrupt shard or a Parquet without the packed columns).

Model layouts (one function each, tried in this order):

- our ``iter_N`` directory (``model/`` is a dist_checkpointing directory, ``trainer.json``
  records step and architecture), or its ``model/`` directory;
- a Megatron-Core distributed checkpoint: ``metadata.json`` with ``sharded_backend`` and its
  shard files (``.metadata``, ``*.distcp``, ``common.pt`` for ``torch_dist``); Megatron-LM's
  ``iter_0000050`` directories are this, their step is in the name (else the iteration in
  ``common.pt``), their architecture in the arguments ``common.pt`` holds
  (:mod:`nemotron.train.megatron_lm`);
- a run's ``checkpoints/`` directory: ``latest`` names the iteration (our runs; the newest
  complete ``iter_N`` when it names an incomplete one) or ``latest_checkpointed_iteration.txt``
  holds its number (Megatron-LM);
- a Hugging Face directory: ``config.json`` with ``model_type`` or ``architectures``, weights
  in ``*.safetensors`` (headers parsed, tensors not loaded) or ``pytorch_model*.bin``, every
  shard of an ``*.index.json`` present; the step is ``trainer_state.json``'s ``global_step``.

``--step`` sets or overrides the step; without one, a checkpoint that records none is refused.

PATH is never written to: the artifact's directory is a small one of our own
(``<NEMOTRON_RUNS_ROOT or runs>/<name>/<fingerprint>`` for models, ``<NEMOTRON_DATA_ROOT or
data>/<name>/<fingerprint>`` for data) holding symbolic links to the imported files (plus, for
pretraining data, ``blend.json`` rewritten per split; for a distributed checkpoint without our
``trainer.json``, a ``trainer.json`` that records the step only). That is where the registry's
``metadata.json`` goes (it would otherwise overwrite a distributed checkpoint's own
``metadata.json``), and it gives every import the layout the stages read:
``${art:model,path}/model``, ``${art:data,path}/blend.json``, ``${art:data,path}/train/``.
The fingerprint covers the imported files (names, sizes, mtimes) and the options, so importing
the same thing again returns the version already logged.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nemo_runspec.artifacts import log_artifact, setup_artifact_tracking
from nemo_runspec.errors import ConfigError, DataError, TypeMismatchError
from nemo_runspec.refs import validate_name
from nemotron.data.files import file_sha256
from nemotron.stages import outputs
from nemotron.train.megatron_lm import ARCHITECTURE_SOURCE as ARCHITECTURE_FROM_ARGS
from nemotron.train.megatron_lm import SavedState, architecture_from_args, read_common

STAGES = ("pretrain", "sft", "rl")
BLEND_SPLITS = ("train", "valid", "test")
SFT_SPLITS = ("train", "valid", "test")
RL_SPLITS = ("train", "val", "test")
SFT_COLUMNS = {  # column -> allowed list value types
    "input_ids": ("int32", "int64"),
    "loss_mask": ("int8", "uint8", "bool"),
    "seq_start_id": ("int32", "int64"),
}
PACK_SIZE_KEY = b"nemotron.pack_size"
EXPECTED_MODEL = "a Megatron distributed checkpoint (metadata.json) or a Hugging Face directory (config.json)"
ARCHITECTURE_SUBSET = ("trainer.json: only the fields a checkpoint must match to load (nemotron.train.gpt.architecture_of), "
                       "a subset of the model config (no seq_length, rotary_base, requires_gpu)")
ARCHITECTURE_FULL = "job.json: the full model config of the run that wrote the checkpoint"
_ITER_RE = re.compile(r"iter_(\d+)$")
_LINK_HINT = "fix or remove the link; nothing was logged"
_MODEL_LAYOUTS = ("model layouts: our iter_N (or its model/), a run's checkpoints/ (latest), Megatron-LM's "
                  "iter_NNNNNNN (torch_dist) or its checkpoints/ (latest_checkpointed_iteration.txt), "
                  "a Hugging Face directory")


# -- shared: paths, symlinks, the registry, the artifact directory ------------------------------

def _resolve(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(PATH made absolute, PATH with every symlink resolved); missing or looping -> error."""
    given = Path(path).expanduser().absolute()
    try:
        return given, given.resolve(strict=True)
    except FileNotFoundError:
        raise ConfigError(f"{given} does not exist", hint="check the path; nothing was logged") from None
    except (RuntimeError, OSError) as err:  # RuntimeError: a symlink loop (Python < 3.13)
        raise ConfigError(f"{given}: cannot resolve ({_loop_or(err)})", hint=_LINK_HINT) from None


def _loop_or(err: BaseException) -> str:
    if isinstance(err, RuntimeError) or getattr(err, "errno", None) == errno.ELOOP:
        return "a symlink loop"
    return getattr(err, "strerror", None) or str(err)


def _found(directory: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in directory.iterdir())
    return ", ".join(names[:12]) + (f", ... ({len(names)} entries)" if len(names) > 12 else "") if names else "nothing"


def _non_empty_dir(resolved: Path, given: Path, expected: str) -> None:
    if not resolved.is_dir():
        raise ConfigError(f"{given} is a file; expected a directory: {expected}", hint="import the directory that holds it")
    if not any(resolved.iterdir()):
        raise ConfigError(f"{given} is empty; expected {expected}", hint="check the path; nothing was logged")


def _check_tree(root: Path) -> list[tuple[str, int, int]]:
    """Every symlink under ``root`` resolves inside it; returns (file, size, mtime) of each file.

    Symlinked directories are not descended into: the links must point inside ``root``,
    whose real contents are walked anyway."""
    listing = []
    for directory, dirnames, filenames in os.walk(root):
        for entry in sorted(dirnames + filenames):
            path = Path(directory) / entry
            if path.is_symlink():
                try:
                    target = path.resolve(strict=True)
                except FileNotFoundError:
                    raise ConfigError(f"symlink {path} points to {os.readlink(path)}, which does not exist",
                                      hint=_LINK_HINT) from None
                except (RuntimeError, OSError) as err:
                    raise ConfigError(f"symlink {path} cannot be resolved ({_loop_or(err)})", hint=_LINK_HINT) from None
                if not target.is_relative_to(root):
                    raise ConfigError(f"symlink {path} points outside the imported directory {root} (to {target})",
                                      hint="copy the files it points to into the directory (cp -L), or import "
                                           "the directory that holds them")
            if entry in filenames:
                stat = path.stat()
                listing.append((str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns))
    return listing


def _tracking(root: str | os.PathLike[str] | None, name: str, type_name: str):
    tracking = setup_artifact_tracking({"root": str(root)} if root else None)
    bound = tracking.registry.bound_type(validate_name(name))
    if bound not in (None, type_name):
        raise TypeMismatchError(f"artifact name {name!r} is bound to {bound}, not {type_name}", hint="choose another --name")
    return tracking


def _artifact_dir(root_var: str, default: str, name: str, identity: Any, links: dict[str, Path],
                  files: dict[str, str] | None = None) -> tuple[Path, str]:
    """``<root>/<name>/<fingerprint>`` holding ``links`` (name -> target) and ``files``."""
    directory, digest = outputs.output_dir(os.environ.get(root_var) or default, name, identity)
    if directory.is_dir():  # the same import before: same content by construction
        return directory, digest
    staging = directory.with_name(f".{directory.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for link, target in links.items():
        (staging / link).symlink_to(target)
    for file, text in (files or {}).items():
        (staging / file).write_text(text, encoding="utf-8")
    try:
        os.rename(staging, directory)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not directory.is_dir():
            raise
        # else a concurrent import of the same thing got there first
    return directory, digest


def _already_logged(cls, name: str, directory: Path, digest: str):
    existing = outputs.already_logged(cls, name, directory, digest, "metadata.json")
    if existing is not None:
        print(f"{existing.name}:v{existing.version} already records this import ({directory}); nothing to do")
    return existing


def _read_json(file: Path, what: str) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{file}: not valid JSON ({err})", hint=f"{file.name} must be {what}") from None


def _check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}", hint=f"one of: {', '.join(STAGES)}")


def _load_tokenizer(option: str):
    """--tokenizer: a directory or tokenizer.json, named after the directory that holds it."""
    from nemotron.data.tokenizer import load_tokenizer, tokenizer_file

    path = Path(option).expanduser().absolute()
    return load_tokenizer(str(path), tokenizer_file(path).parent.name)


# -- models --------------------------------------------------------------------------------------

@dataclass
class Checkpoint:
    """What a model directory holds, as detected by one of the layout functions below."""

    format: str                      # megatron | hf
    layout: str                      # how it was recognised, for the record
    directory: Path                  # the checkpoint's own directory (resolved)
    step: int | None = None
    step_source: str | None = None
    trainer: dict[str, Any] | None = None   # our trainer.json
    links: dict[str, Path] = field(default_factory=dict)   # entries of the artifact directory
    info: dict[str, Any] = field(default_factory=dict)     # layout-specific metadata


def import_model(family: str, stage: str, path: str | os.PathLike[str], *, step: int | None = None,
                 name: str | None = None, tokenizer: str | None = None, root: str | os.PathLike[str] | None = None):
    """Log the checkpoint at ``path`` as a ModelArtifact of ``stage``; return the artifact."""
    from nemotron.kit.artifacts import ModelArtifact

    _check_stage(stage)
    name = name or f"{family}-{stage}-model-imported"
    tracking = _tracking(root, name, "ModelArtifact")
    given, resolved = _resolve(path)
    _non_empty_dir(resolved, given, EXPECTED_MODEL)
    listing = _check_tree(resolved)
    checkpoint = find_checkpoint(resolved)
    if checkpoint.directory != resolved:  # one iteration of checkpoints/, or the iter_N above model/
        listing = _check_tree(checkpoint.directory)
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
    metadata.update(_model_architecture(checkpoint))
    metadata.update(_model_tokenizer(checkpoint, tokenizer, given))

    files = {}
    if checkpoint.format == "megatron" and "trainer.json" not in checkpoint.links:
        files["trainer.json"] = json.dumps({"step": checkpoint.step, "imported_from": str(given),
                                            "note": "written by `model import`: the checkpoint records no trainer "
                                                    "state of ours; only the step is known"}, indent=1)
    identity = {"kind": "model", "stage": stage, "source": str(checkpoint.directory), "files": listing,
                "step": checkpoint.step, "tokenizer": metadata.get("tokenizer_sha256")}
    directory, digest = _artifact_dir("NEMOTRON_RUNS_ROOT", "runs", name, identity, checkpoint.links, files)
    if (existing := _already_logged(ModelArtifact, name, directory, digest)) is not None:
        return existing
    metadata["fingerprint"] = digest
    artifact = ModelArtifact(path=directory, stage=stage, step=checkpoint.step, format=checkpoint.format,
                             metadata=metadata)
    log_artifact(artifact, tracking, name=name)
    print(f"logged {artifact.name}:v{artifact.version}: {checkpoint.format} checkpoint ({checkpoint.layout}), "
          f"stage {stage}, step {artifact.step}, imported from {given} -> {directory}")
    return artifact


def find_checkpoint(directory: Path) -> Checkpoint:
    """The checkpoint in ``directory`` (resolved, non-empty), or a one-line error."""
    if (directory / "model" / "metadata.json").is_file():
        return _nemotron_iteration(directory)
    if _is_dist_checkpoint(directory):
        if directory.name == "model" and (directory.parent / "trainer.json").is_file():
            return _nemotron_iteration(directory.parent)
        return _dist_checkpoint(directory)
    if (directory / "latest").is_file() or (directory / "latest_checkpointed_iteration.txt").is_file():
        return _checkpoints_directory(directory)
    if (directory / "config.json").is_file():
        return _hf_directory(directory)
    hint = _MODEL_LAYOUTS
    if (directory / "mp_rank_00").is_dir() or list(directory.glob("iter_*/mp_rank_00")):
        hint = "this is Megatron-LM's legacy torch format; convert it with --ckpt-format torch_dist first"
    elif (directory / "metadata.json").is_file():
        hint = "its metadata.json has no 'sharded_backend': it is not a dist_checkpointing directory"
    raise ConfigError(f"{directory}: expected {EXPECTED_MODEL}; found: {_found(directory)}", hint=hint)


def _is_dist_checkpoint(directory: Path) -> bool:
    file = directory / "metadata.json"
    if not file.is_file():
        return False
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(meta, dict) and "sharded_backend" in meta


def _check_dist_files(directory: Path) -> dict[str, Any]:
    """The dist_checkpointing ``metadata.json`` of ``directory`` and the shard files it implies."""
    meta = _read_json(directory / "metadata.json", "dist_checkpointing metadata")
    if not isinstance(meta, dict) or "sharded_backend" not in meta:
        raise DataError(f"{directory / 'metadata.json'}: no 'sharded_backend'; not a dist_checkpointing directory")
    backend = meta["sharded_backend"]
    if backend == "torch_dist":
        shards = sorted(directory.glob("*.distcp"))
        if not (directory / ".metadata").is_file():
            raise DataError(f"{directory}: torch_dist checkpoint without its .metadata file")
        if not shards:
            raise DataError(f"{directory}: torch_dist checkpoint without shard files (*.distcp)")
        empty = [s for s in shards if s.stat().st_size == 0]
        if empty:
            raise DataError(f"{empty[0]}: empty shard file")
    elif not [p for p in directory.iterdir() if p.name != "metadata.json"]:
        raise DataError(f"{directory}: {backend} checkpoint without shard files (only metadata.json)")
    if meta.get("common_backend", "torch") == "torch" and not (directory / "common.pt").is_file():
        raise DataError(f"{directory}: distributed checkpoint without common.pt (the non-sharded state)")
    return {"sharded_backend": backend}


def _nemotron_iteration(directory: Path) -> Checkpoint:
    """Our ``iter_N``: ``model/`` (dist_checkpointing), ``ranks/``, ``trainer.json``."""
    info = _check_dist_files(directory / "model")
    trainer, step, source = None, None, None
    if (directory / "trainer.json").is_file():
        trainer = _read_json(directory / "trainer.json", "our trainer state (step, architecture)")
        if not isinstance(trainer, dict) or not isinstance(trainer.get("step"), int) or trainer["step"] < 0:
            raise DataError(f"{directory / 'trainer.json'}: no integer 'step'")
        step, source = trainer["step"], "trainer.json"
    elif match := _ITER_RE.fullmatch(directory.name):
        step, source = int(match.group(1)), "directory name"
    links = {p.name: p for p in directory.iterdir() if p.name != "metadata.json"}  # ours is the registry's sidecar
    return Checkpoint("megatron", "nemotron iter_N", directory, step, source, trainer, links, info)


def _dist_checkpoint(directory: Path) -> Checkpoint:
    """A bare dist_checkpointing directory (Megatron-LM's ``iter_0000050``): the step from its
    name or the iteration Megatron-LM saved, the architecture from the arguments it saved."""
    info = _check_dist_files(directory)
    saved = _megatron_lm_state(directory)
    match = _ITER_RE.fullmatch(directory.name)
    step, source = (int(match.group(1)), "directory name") if match else (saved.iteration, "common.pt iteration")
    if saved.args is not None and (architecture := architecture_from_args(saved.args)) is not None:
        info.update(architecture=architecture, architecture_source=ARCHITECTURE_FROM_ARGS)
    return Checkpoint("megatron", "megatron distributed checkpoint", directory, step,
                      source if step is not None else None, links={"model": directory}, info=info)


def _megatron_lm_state(directory: Path) -> SavedState:
    if not (directory / "common.pt").is_file():
        return SavedState(None, None)
    try:
        return read_common(directory / "common.pt")
    except ValueError as err:
        print(f"warning: {err}; the checkpoint's architecture and iteration are not recorded", file=sys.stderr)
        return SavedState(None, None)


def _checkpoints_directory(directory: Path) -> Checkpoint:
    """A run's checkpoints: ``latest`` (ours) or ``latest_checkpointed_iteration.txt`` (Megatron-LM)."""
    if (directory / "latest").is_file():
        named = (directory / "latest").read_text(encoding="utf-8").strip()
        complete = lambda p: (p / "trainer.json").is_file() and (p / "model" / "metadata.json").is_file()  # noqa: E731
        candidates = ([directory / named] if named else []) + sorted(directory.glob("iter_???????"), reverse=True)
        chosen = next((p for p in candidates if p.is_dir() and complete(p)), None)
        if chosen is not None and chosen.resolve().parent != directory:
            raise ConfigError(f"{directory / 'latest'} names {named!r}, which is not a checkpoint in {directory}")
        if chosen is None:
            raise ConfigError(f"{directory}: no complete checkpoint (latest names {named!r}; found: {_found(directory)})",
                              hint="a complete iter_N holds trainer.json and model/metadata.json")
        checkpoint = _nemotron_iteration(chosen.resolve())
        checkpoint.layout = "nemotron checkpoints/ (latest)"
        return checkpoint
    file = directory / "latest_checkpointed_iteration.txt"
    text = file.read_text(encoding="utf-8").strip()
    if text == "release":
        iteration, step = directory / "release", None
    elif text.isdigit():
        iteration, step = directory / f"iter_{int(text):07d}", int(text)
    else:
        raise DataError(f"{file}: expected an iteration number or 'release', found {text[:40]!r}")
    if not iteration.is_dir():
        raise ConfigError(f"{file} names {iteration.name}, which is not there; found: {_found(directory)}")
    if not _is_dist_checkpoint(iteration):
        raise ConfigError(f"{iteration}: expected a Megatron distributed checkpoint (metadata.json with "
                          f"sharded_backend); found: {_found(iteration)}",
                          hint="Megatron-LM's legacy torch format (mp_rank_*) is not supported; "
                               "save with --ckpt-format torch_dist")
    checkpoint = _dist_checkpoint(iteration.resolve())
    checkpoint.layout = "megatron-lm checkpoints (latest_checkpointed_iteration.txt)"
    if step is not None:  # "release": the iteration common.pt holds, if any
        checkpoint.step, checkpoint.step_source = step, "latest_checkpointed_iteration.txt"
    return checkpoint


def _hf_directory(directory: Path) -> Checkpoint:
    """``config.json`` + readable weights (+ every shard of an index); step from trainer_state.json."""
    config = _read_json(directory / "config.json", "a Hugging Face model config")
    if not isinstance(config, dict) or not (isinstance(config.get("model_type"), str) or config.get("architectures")):
        raise DataError(f"{directory / 'config.json'}: no model_type or architectures; not a Hugging Face model config")
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (directory / index_name).is_file():
            index = _read_json(directory / index_name, "a weight index ({'weight_map': {tensor: file}})")
            weight_map = index.get("weight_map") if isinstance(index, dict) else None
            if not isinstance(weight_map, dict) or not weight_map:
                raise DataError(f"{directory / index_name}: no weight_map")
            outside = sorted({str(f) for f in weight_map.values() if Path(str(f)).name != f})
            if outside:
                raise DataError(f"{directory / index_name} lists {outside[0]}, not a file of {directory}")
            missing = sorted({f for f in weight_map.values() if not (directory / f).is_file()})
            if missing:
                raise DataError(f"{directory / index_name} lists {missing[0]}, which is missing"
                                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    safetensors_files = sorted(directory.glob("*.safetensors"))
    bin_files = sorted(directory.glob("pytorch_model*.bin"))
    if not safetensors_files and not bin_files:
        raise ConfigError(f"{directory}: Hugging Face config.json but no weights (expected *.safetensors or "
                          f"pytorch_model*.bin); found: {_found(directory)}")
    for file in safetensors_files:
        _check_safetensors(file)
    for file in bin_files:
        _check_torch_bin(file)
    step, source = None, None
    if (directory / "trainer_state.json").is_file():
        state = _read_json(directory / "trainer_state.json", "transformers' trainer state")
        if isinstance(state, dict) and isinstance(state.get("global_step"), int) and state["global_step"] >= 0:
            step, source = state["global_step"], "trainer_state.json"
    architectures = config.get("architectures") or []
    info = {"hf_config": {k: config.get(k) for k in ("model_type", "architectures", "vocab_size") if k in config},
            "hf_architecture": architectures[0] if architectures else None,
            "weights": [p.name for p in safetensors_files or bin_files]}
    links = {p.name: p for p in directory.iterdir() if p.name != "metadata.json"}
    return Checkpoint("hf", "hugging face", directory, step, source, links=links, info=info)


def _check_safetensors(file: Path) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="numpy") as handle:
            handle.keys()
    except Exception as err:  # noqa: BLE001 - the Rust side raises its own error types
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{file}: not a readable safetensors file ({reason})") from None


def _check_torch_bin(file: Path) -> None:
    """A torch.save file: a zip archive with a data.pkl, or the legacy pickle format."""
    try:
        if zipfile.is_zipfile(file):
            with zipfile.ZipFile(file) as archive:
                if not any(n.endswith("data.pkl") for n in archive.namelist()):
                    raise DataError(f"{file}: a zip archive without data.pkl, not a torch.save file")
            return
        with open(file, "rb") as f:
            if f.read(1) != b"\x80":  # pickle protocol 2+ starts with PROTO
                raise DataError(f"{file}: neither a zip archive nor a pickle, not a torch.save file")
    except zipfile.BadZipFile as err:
        raise DataError(f"{file}: corrupt zip archive ({err})") from None


def _model_architecture(checkpoint: Checkpoint) -> dict[str, Any]:
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


def _model_tokenizer(checkpoint: Checkpoint, option: str | None, given: Path) -> dict[str, Any]:
    """vocab_size / tokenizer_sha256: from --tokenizer (checked against what the checkpoint
    records), else from our run's job.json."""
    recorded = _run_job(checkpoint.directory).get("data") if checkpoint.trainer is not None else None
    recorded = recorded if isinstance(recorded, dict) else {}
    if option is None:
        if recorded.get("tokenizer_sha256") and recorded.get("vocab_size"):
            return {"vocab_size": recorded["vocab_size"], "tokenizer_sha256": recorded["tokenizer_sha256"],
                    "tokenizer_source": "job.json"}
        return {}
    loaded = _load_tokenizer(option)
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


# -- data ----------------------------------------------------------------------------------------

def import_data(family: str, stage: str, path: str | os.PathLike[str], *, name: str | None = None,
                tokenizer: str | None = None, chat_template: str | None = None,
                root: str | os.PathLike[str] | None = None):
    """Log the data at ``path`` as the data artifact of ``stage``; return the artifact."""
    _check_stage(stage)
    if chat_template is not None and stage != "sft":
        raise ConfigError("--chat-template applies to sft data only")
    name = name or f"{family}-{stage}-data-imported"
    if stage == "pretrain":
        return _import_pretrain(path, name, tokenizer, root)
    if stage == "sft":
        return _import_sft(path, name, tokenizer, chat_template, root)
    return _import_rl(path, name, tokenizer, root)


def _require_tokenizer(option: str | None, stage: str):
    if option is None:
        raise ConfigError(f"importing {stage} data needs the tokenizer its token ids come from",
                          hint="pass --tokenizer PATH (a tokenizer directory or tokenizer.json)")
    return _load_tokenizer(option)


def _source(given: Path, resolved: Path) -> Any:
    from nemotron.kit.artifacts import SourceInfo

    if resolved.is_file():
        return SourceInfo(name="imported", uri=str(given), num_bytes=resolved.stat().st_size, sha256=file_sha256(resolved))
    return SourceInfo(name="imported", uri=str(given))


# pretraining data: blend.json -> PretrainBlendsArtifact

@dataclass
class _Shard:
    prefix: str
    dtype: np.dtype
    tokens: int
    sequences: int


def _import_pretrain(path, name: str, tokenizer: str | None, root):
    from nemotron.data.indexed_dataset import read_index
    from nemotron.kit.artifacts import PretrainBlendsArtifact

    tracking = _tracking(root, name, "PretrainBlendsArtifact")
    given, resolved = _resolve(path)
    if resolved.is_dir():
        _non_empty_dir(resolved, given, "blend.json")
        if not (resolved / "blend.json").is_file():
            raise ConfigError(f"{given}: expected blend.json; found: {_found(resolved)}")
        given, resolved = _resolve(given / "blend.json")
    loaded = _require_tokenizer(tokenizer, "pretrain")
    blend, blend_format = _read_blend(resolved)
    shards: dict[str, _Shard] = {}
    split_tokens, split_sequences, num_shards = {}, {}, 0
    for split, entries in blend.items():
        for prefix in _prefixes(resolved, split, entries):
            if prefix not in shards:
                for suffix in (".idx", ".bin"):
                    try:
                        Path(prefix + suffix).resolve(strict=True)
                    except FileNotFoundError:
                        raise DataError(f"{prefix}{suffix}: shard file missing (listed in {resolved}, split {split})",
                                        hint="every prefix of blend.json needs its .bin and .idx") from None
                    except (RuntimeError, OSError) as err:
                        raise DataError(f"{prefix}{suffix}: cannot be resolved ({_loop_or(err)})") from None
                header = read_index(prefix)
                shards[prefix] = _Shard(prefix, header.dtype, header.num_tokens, header.num_sequences)
            shard = shards[prefix]
            split_tokens[split] = split_tokens.get(split, 0) + shard.tokens
            split_sequences[split] = split_sequences.get(split, 0) + shard.sequences
            num_shards += 1
    if not num_shards:
        raise DataError(f"{resolved} lists no shards", hint="blend.json: {\"train\": [weight, prefix, ...], ...}")
    for shard in shards.values():
        if shard.dtype.kind not in "iu":
            raise DataError(f"{shard.prefix}.idx holds {shard.dtype} values, not token ids")
        limit = int(np.iinfo(shard.dtype).max) + 1
        if loaded.vocab_size > limit:
            raise DataError(f"{shard.prefix}.idx stores tokens as {shard.dtype}, which holds ids below {limit}, "
                            f"but tokenizer {loaded.info.path} has {loaded.vocab_size} tokens",
                            hint="pass the tokenizer the shards were made with")

    text = json.dumps(blend, indent=1) + "\n"
    identity = {"kind": "pretrain-data", "blend": text, "tokenizer": loaded.info.sha256,
                "shards": sorted((p, os.stat(p + ".bin").st_size, os.stat(p + ".bin").st_mtime_ns) for p in shards)}
    directory, digest = _artifact_dir("NEMOTRON_DATA_ROOT", "data", name, identity, {}, {"blend.json": text})
    if (existing := _already_logged(PretrainBlendsArtifact, name, directory, digest)) is not None:
        return existing
    artifact = PretrainBlendsArtifact(
        path=directory,
        blend_path=directory / "blend.json",
        total_tokens=sum(split_tokens.values()),
        total_sequences=sum(split_sequences.values()),
        num_shards=num_shards,
        split_tokens=split_tokens,
        split_sequences=split_sequences,
        tokenizer=loaded.info,
        sources=[_source(given, resolved)],
        metadata={
            "imported_from": str(given),
            "blend_format": blend_format,
            "dtypes": sorted({str(s.dtype) for s in shards.values()}),
            "eod_id": loaded.eod_id,
            "pad_id": loaded.pad_id,
            "fingerprint": digest,
        },
    )
    log_artifact(artifact, tracking, name=name)
    print(f"logged {artifact.name}:v{artifact.version}: {artifact.total_tokens} tokens in {num_shards} shards "
          f"({', '.join(f'{s} {t}' for s, t in split_tokens.items())}), imported from {given} -> {directory}")
    return artifact


def _read_blend(file: Path) -> tuple[dict[str, list], str]:
    """Per split, the Megatron blend list (``[weight, prefix, ...]`` or ``[prefix, ...]``); a
    plain data_path list becomes the train split."""
    raw = _read_json(file, 'per-split blend lists ({"train": [...], "valid": [...], "test": [...]}) or a data_path list')
    if isinstance(raw, list):
        return {"train": raw}, "data_path list (all of it train)"
    if not isinstance(raw, dict):
        raise DataError(f"{file}: expected per-split lists or a data_path list, found a JSON {type(raw).__name__}")
    unknown = sorted(set(raw) - set(BLEND_SPLITS))
    if unknown:
        raise DataError(f"{file}: unknown split {unknown[0]!r} (splits: {', '.join(BLEND_SPLITS)})")
    blend = {}
    for split in BLEND_SPLITS:
        entries = raw.get(split)
        if entries is None or entries == []:
            continue
        if not isinstance(entries, list):
            raise DataError(f"{file}: {split!r} must be a list, found a JSON {type(entries).__name__}")
        blend[split] = entries
    return blend, "per-split"


def _prefixes(file: Path, split: str, entries: list) -> list[str]:
    """The shard prefixes of one blend list, read as Megatron's get_blend_from_list does."""
    weights, prefixes = entries[0::2], entries[1::2]
    try:
        weighted = len(entries) % 2 == 0 and all(not isinstance(w, bool) and float(w) >= 0 for w in weights)
    except (TypeError, ValueError):
        weighted = False
    names = prefixes if weighted else entries
    for prefix in names:
        if not isinstance(prefix, str) or not prefix.strip():
            raise DataError(f"{file}: {split!r} must be [weight, prefix, ...] or [prefix, ...], found {prefix!r}")
        if not os.path.isabs(prefix.strip()):
            raise DataError(f"{file}: {split!r} shard prefix {prefix!r} is relative; Megatron would resolve it "
                            "against the training's working directory", hint="write absolute shard prefixes")
    return [p.strip() for p in names]


# SFT data: train/ valid/ test/ packed Parquet -> SFTDataArtifact

@dataclass
class _SplitStats:
    path: Path
    packs: int = 0
    sequences: int = 0
    tokens: int = 0
    longest: int = 0
    longest_file: Path | None = None
    pack_sizes: set[int] = field(default_factory=set)


def _import_sft(path, name: str, tokenizer: str | None, chat_template: str | None, root):
    from nemotron.kit.artifacts import ChatTemplateInfo, PackedSplit, SFTDataArtifact

    tracking = _tracking(root, name, "SFTDataArtifact")
    expected = "train/ (and optionally valid/, test/) folders of packed Parquet shards"
    given, resolved = _resolve(path)
    _non_empty_dir(resolved, given, expected)
    listing = _check_tree(resolved)
    if not (resolved / "train").is_dir():
        raise ConfigError(f"{given}: expected {expected}; found: {_found(resolved)}")
    loaded = _require_tokenizer(tokenizer, "sft")
    template_source, template_path = "", None
    if chat_template is not None:
        template_path = Path(chat_template).expanduser().absolute()
        if not template_path.is_file():
            raise ConfigError(f"chat template {template_path} does not exist")
        template_source = template_path.read_text(encoding="utf-8")

    stats = {}
    for split in SFT_SPLITS:
        directory = resolved / split
        shards = sorted(directory.glob("*.parquet")) if directory.is_dir() else []
        if not shards:
            if split == "train":
                raise ConfigError(f"{directory}: no Parquet shards (*.parquet); found: {_found(directory)}")
            continue
        stats[split] = _SplitStats(directory)
        for shard in shards:
            _read_packed_shard(shard, stats[split], loaded.vocab_size)
    pack_sizes = set().union(*(s.pack_sizes for s in stats.values()))
    longest = max(s.longest for s in stats.values())
    if len(pack_sizes) > 1:
        raise DataError(f"{given}: shards record different pack sizes ({', '.join(map(str, sorted(pack_sizes)))})")
    pack_size_source = "parquet metadata nemotron.pack_size" if pack_sizes else "longest pack"
    pack_size = pack_sizes.pop() if pack_sizes else longest
    if longest > pack_size:  # a shard without the metadata, beside ones with it
        too_long = next(s for s in stats.values() if s.longest > pack_size)
        raise DataError(f"{too_long.longest_file}: a pack of {too_long.longest} tokens, longer than the pack size "
                        f"{pack_size} the other shards record")
    if pack_size < 2:
        raise DataError(f"{given}: the longest pack has {pack_size} tokens; a pack needs at least 2")
    num_packs = sum(s.packs for s in stats.values())
    tokens = sum(s.tokens for s in stats.values())

    identity = {"kind": "sft-data", "source": str(resolved), "files": listing, "tokenizer": loaded.info.sha256,
                "template": hashlib.sha256(template_source.encode()).hexdigest()}
    links = {split: s.path for split, s in stats.items()}
    directory, digest = _artifact_dir("NEMOTRON_DATA_ROOT", "data", name, identity, links)
    if (existing := _already_logged(SFTDataArtifact, name, directory, digest)) is not None:
        return existing
    artifact = SFTDataArtifact(
        path=directory,
        pack_size=pack_size,
        num_packs=num_packs,
        num_sequences=sum(s.sequences for s in stats.values()),
        packing_efficiency=round(100.0 * tokens / max(num_packs * pack_size, 1), 3),
        splits={split: PackedSplit(path=str(directory / split), num_packs=s.packs, num_sequences=s.sequences)
                for split, s in stats.items()},
        tokenizer=loaded.info,
        chat_template=ChatTemplateInfo(name="imported", sha256=hashlib.sha256(template_source.encode("utf-8")).hexdigest()),
        sources=[_source(given, resolved)],
        metadata={
            "imported_from": str(given),
            "pack_size_source": pack_size_source,
            "dataset_max_seqlen": longest,
            "chat_template_path": str(template_path) if template_path else None,
            "eod_id": loaded.eod_id,
            "pad_id": loaded.pad_id,
            "fingerprint": digest,
        },
    )
    log_artifact(artifact, tracking, name=name)
    print(f"logged {artifact.name}:v{artifact.version}: {artifact.num_sequences} sequences in {num_packs} packs of "
          f"{pack_size} ({artifact.packing_efficiency:.1f}% full), imported from {given} -> {directory}")
    return artifact


def _read_packed_shard(file: Path, stats: _SplitStats, vocab_size: int) -> None:
    """Check one packed Parquet shard's schema and rows; add its counts to ``stats``."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(file)
        schema = parquet.schema_arrow
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{file}: not a readable Parquet file ({str(err).splitlines()[0]})") from None
    for column, allowed in SFT_COLUMNS.items():
        if column not in schema.names:
            raise DataError(f"{file}: no column {column!r} (packed SFT data has input_ids, loss_mask, seq_start_id; "
                            f"found: {', '.join(schema.names) or 'none'})")
        kind = schema.field(column).type
        is_list = pa.types.is_list(kind) or pa.types.is_large_list(kind)
        if not is_list or str(kind.value_type) not in allowed:
            found = f"list<{kind.value_type}>" if is_list else str(kind)
            raise DataError(f"{file}: column {column!r} is {found}, expected list<{'|'.join(allowed)}>")
    recorded = (schema.metadata or {}).get(PACK_SIZE_KEY)
    if recorded is not None:
        try:
            recorded = int(recorded)
        except ValueError:
            raise DataError(f"{file}: Parquet metadata nemotron.pack_size is {recorded.decode(errors='replace')!r}, "
                            "not an integer") from None
        stats.pack_sizes.add(recorded)
    try:
        table = parquet.read(columns=list(SFT_COLUMNS))
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{file}: cannot read its rows ({str(err).splitlines()[0]})") from None
    ids, mask, starts = (table.column(c).combine_chunks() for c in SFT_COLUMNS)
    lengths = pc.list_value_length(ids).fill_null(0).to_numpy(zero_copy_only=False)
    mask_lengths = pc.list_value_length(mask).fill_null(0).to_numpy(zero_copy_only=False)
    if (bad := np.flatnonzero(lengths != mask_lengths)).size:
        raise DataError(f"{file}: row {bad[0]} has {lengths[bad[0]]} input_ids but {mask_lengths[bad[0]]} loss_mask values")
    values = pc.list_flatten(ids)
    if len(values) and (int(pc.min(values).as_py()) < 0 or int(pc.max(values).as_py()) >= vocab_size):
        raise DataError(f"{file}: token ids outside the tokenizer's vocabulary [0, {vocab_size})",
                        hint="pass the tokenizer the data was made with")
    mask_values = pc.list_flatten(mask)
    if len(mask_values) and not pa.types.is_boolean(mask_values.type) and (
            int(pc.min(mask_values).as_py()) < 0 or int(pc.max(mask_values).as_py()) > 1):
        raise DataError(f"{file}: loss_mask values other than 0 and 1")
    _check_starts(file, starts, lengths)
    longest = int(lengths.max(initial=0))
    if recorded is not None and longest > recorded:
        raise DataError(f"{file}: a pack of {longest} tokens, longer than its recorded pack size {recorded}")
    stats.packs += len(lengths)
    stats.sequences += len(pc.list_flatten(starts))
    stats.tokens += int(lengths.sum())
    if longest > stats.longest:
        stats.longest, stats.longest_file = longest, file


def _check_starts(file: Path, starts, lengths: np.ndarray) -> None:
    """Every non-empty pack's sub-sequence starts: first 0, increasing, inside the pack."""
    import pyarrow.compute as pc

    counts = pc.list_value_length(starts).fill_null(0).to_numpy(zero_copy_only=False)
    values = pc.list_flatten(starts).to_numpy(zero_copy_only=False)
    rows = np.repeat(np.arange(len(counts)), counts)          # the row of every start
    firsts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)[counts > 0]
    problems = {
        "has tokens but no seq_start_id": np.flatnonzero((counts == 0) & (lengths > 0)),
        "does not start its first sub-sequence at 0": np.flatnonzero(counts > 0)[values[firsts] != 0],
        "has a seq_start_id past its end": rows[values >= lengths[rows]],
        "has seq_start_id values that do not increase": rows[1:][(rows[1:] == rows[:-1]) & (np.diff(values) <= 0)],
    }
    for what, bad in problems.items():
        if len(bad):
            raise DataError(f"{file}: row {int(bad[0])} {what}")


# RL data: split JSONL (+ manifest.json) -> SplitJsonlDataArtifact

def _import_rl(path, name: str, tokenizer: str | None, root):
    from nemotron.data.rl_prep import FIELDS, MANIFEST, SCHEMA, SCHEMA_VERSION
    from nemotron.kit.artifacts import SplitJsonlDataArtifact

    tracking = _tracking(root, name, "SplitJsonlDataArtifact")
    expected = "train.jsonl (and optionally val.jsonl, test.jsonl) or a manifest.json naming them"
    given, resolved = _resolve(path)
    _non_empty_dir(resolved, given, expected)
    listing = _check_tree(resolved)
    manifest = _read_json(resolved / MANIFEST, "the manifest of `data prep rl`") if (resolved / MANIFEST).is_file() else None
    files = _rl_files(resolved, manifest, expected)
    counts, ours, without_answer = {}, True, 0
    for split, file in files.items():
        counts[split], our_fields, missing_answers = _read_prompts(file, FIELDS)
        ours &= our_fields
        without_answer += missing_answers
        listed = ((manifest or {}).get("files") or {}).get(split) or {}
        if isinstance(listed.get("count"), int) and listed["count"] != counts[split]:
            raise DataError(f"{file}: {counts[split]} lines, but {resolved / MANIFEST} says {listed['count']}")
        if isinstance(listed.get("sha256"), str) and listed["sha256"] != file_sha256(file):
            raise DataError(f"{file}: its sha256 differs from the one {resolved / MANIFEST} records")
    if counts["train"] == 0:
        raise DataError(f"{files['train']}: no prompts")
    if without_answer:
        print(f"warning: {without_answer} prompts have no answer (expected_answer/answer/solution); "
              "verifier rewards need one")
    if manifest and manifest.get("schema"):
        record_schema = f"{manifest['schema']}/v{manifest.get('schema_version')}"
    else:
        record_schema = f"{SCHEMA}/v{SCHEMA_VERSION}" if ours else None

    links = {f"{split}.jsonl": file for split, file in files.items()}
    if manifest is not None:
        links[MANIFEST] = resolved / MANIFEST
    loaded = _load_tokenizer(tokenizer) if tokenizer is not None else None
    identity = {"kind": "rl-data", "source": str(resolved), "files": listing,
                "tokenizer": loaded.info.sha256 if loaded else None}
    directory, digest = _artifact_dir("NEMOTRON_DATA_ROOT", "data", name, identity, links)
    if (existing := _already_logged(SplitJsonlDataArtifact, name, directory, digest)) is not None:
        return existing
    in_dir = lambda split: directory / f"{split}.jsonl" if split in files else None  # noqa: E731
    artifact = SplitJsonlDataArtifact(
        path=directory,
        train_path=in_dir("train"),
        val_path=in_dir("val"),
        test_path=in_dir("test"),
        train_count=counts["train"],
        val_count=counts.get("val", 0),
        test_count=counts.get("test", 0),
        sources=[_source(given, resolved)],
        manifest_path=directory / MANIFEST if manifest is not None else None,
        record_schema=record_schema,
        metadata={
            "imported_from": str(given),
            "without_answer": without_answer,
            **({"tokenizer_sha256": loaded.info.sha256, "tokenizer_path": loaded.info.path,
                "vocab_size": loaded.vocab_size} if loaded else {}),
            "fingerprint": digest,
        },
    )
    log_artifact(artifact, tracking, name=name)
    print(f"logged {artifact.name}:v{artifact.version}: {artifact.train_count} train / {artifact.val_count} val / "
          f"{artifact.test_count} test prompts, imported from {given} -> {directory}")
    return artifact


def _rl_files(directory: Path, manifest: Any, expected: str) -> dict[str, Path]:
    """split -> its JSONL file: as the manifest names them, else ``<split>.jsonl``."""
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    if manifest is not None and not isinstance(listed, dict):
        raise DataError(f"{directory / 'manifest.json'}: no 'files' mapping (split -> {{path, count}})")
    files = {}
    for split in RL_SPLITS:
        entry = (listed or {}).get(split)
        name = entry.get("path") if isinstance(entry, dict) else None
        file = directory / (name or f"{split}.jsonl")
        if name and not file.is_file():
            raise DataError(f"{directory / 'manifest.json'} names {name} for {split}, which is missing")
        if file.is_file():
            if not file.resolve().is_relative_to(directory):
                raise ConfigError(f"{file} is outside the imported directory {directory}")
            files[split] = file.resolve()
    if "train" not in files:
        raise ConfigError(f"{directory}: expected {expected}; found: {_found(directory)}")
    return files


def _read_prompts(file: Path, fields: tuple[str, ...]) -> tuple[int, bool, int]:
    """(line count, whether every line has exactly ``fields``, prompts without an answer);
    every line must be a JSON object holding a prompt (``nemotron.data.rl_prep.to_prompt``)."""
    import orjson

    from nemotron.data.rl_prep import PromptError, to_prompt

    count, ours, without_answer = 0, True, 0
    with open(file, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                raise DataError(f"{file}:{number}: empty line")
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as err:
                raise DataError(f"{file}:{number}: not JSON ({err})") from None
            try:
                to_prompt(record)
            except PromptError as err:
                if err.reason != "no_answer":
                    raise DataError(f"{file}:{number}: {err}") from None
                without_answer += 1
            ours = ours and tuple(record) == fields
            count += 1
    return count, ours, without_answer
