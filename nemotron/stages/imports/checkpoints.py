"""Which checkpoint a model directory holds: one function per layout, tried in this order.

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
  shard of an ``*.index.json`` present; the step is ``trainer_state.json``'s ``global_step``;
  a ``nemotron_h`` one (NemotronHForCausalLM, what a hybrid model exports to) records its
  architecture as our model config (:func:`nemotron.train.hf_nemotron_h.architecture_from_hf`).
"""

from __future__ import annotations

import json
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemo_runspec.errors import ConfigError, DataError
from nemotron.stages.imports.paths import found, read_json
from nemotron.train.megatron_lm import ARCHITECTURE_SOURCE as ARCHITECTURE_FROM_ARGS
from nemotron.train.megatron_lm import SavedState, architecture_from_args, read_common

EXPECTED_MODEL = "a Megatron distributed checkpoint (metadata.json) or a Hugging Face directory (config.json)"
_ITER_RE = re.compile(r"iter_(\d+)$")
_MODEL_LAYOUTS = ("model layouts: our iter_N (or its model/), a run's checkpoints/ (latest), Megatron-LM's "
                  "iter_NNNNNNN (torch_dist) or its checkpoints/ (latest_checkpointed_iteration.txt), "
                  "a Hugging Face directory")


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
    raise ConfigError(f"{directory}: expected {EXPECTED_MODEL}; found: {found(directory)}", hint=hint)


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
    meta = read_json(directory / "metadata.json", "dist_checkpointing metadata")
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
        trainer = read_json(directory / "trainer.json", "our trainer state (step, architecture)")
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
        return _our_latest(directory)
    file = directory / "latest_checkpointed_iteration.txt"
    text = file.read_text(encoding="utf-8").strip()
    if text == "release":
        iteration, step = directory / "release", None
    elif text.isdigit():
        iteration, step = directory / f"iter_{int(text):07d}", int(text)
    else:
        raise DataError(f"{file}: expected an iteration number or 'release', found {text[:40]!r}")
    if not iteration.is_dir():
        raise ConfigError(f"{file} names {iteration.name}, which is not there; found: {found(directory)}")
    if not _is_dist_checkpoint(iteration):
        raise ConfigError(f"{iteration}: expected a Megatron distributed checkpoint (metadata.json with "
                          f"sharded_backend); found: {found(iteration)}",
                          hint="Megatron-LM's legacy torch format (mp_rank_*) is not supported; "
                               "save with --ckpt-format torch_dist")
    checkpoint = _dist_checkpoint(iteration.resolve())
    checkpoint.layout = "megatron-lm checkpoints (latest_checkpointed_iteration.txt)"
    if step is not None:  # "release": the iteration common.pt holds, if any
        checkpoint.step, checkpoint.step_source = step, "latest_checkpointed_iteration.txt"
    return checkpoint


def _our_latest(directory: Path) -> Checkpoint:
    """The iteration ``latest`` names, or the newest complete one when that one is incomplete
    (a run killed while writing it)."""
    named = (directory / "latest").read_text(encoding="utf-8").strip()
    complete = lambda p: (p / "trainer.json").is_file() and (p / "model" / "metadata.json").is_file()  # noqa: E731
    candidates = ([directory / named] if named else []) + sorted(directory.glob("iter_???????"), reverse=True)
    chosen = next((p for p in candidates if p.is_dir() and complete(p)), None)
    if chosen is not None and chosen.resolve().parent != directory:
        raise ConfigError(f"{directory / 'latest'} names {named!r}, which is not a checkpoint in {directory}")
    if chosen is None:
        raise ConfigError(f"{directory}: no complete checkpoint (latest names {named!r}; found: {found(directory)})",
                          hint="a complete iter_N holds trainer.json and model/metadata.json")
    checkpoint = _nemotron_iteration(chosen.resolve())
    checkpoint.layout = "nemotron checkpoints/ (latest)"
    return checkpoint


def _hf_directory(directory: Path) -> Checkpoint:
    """``config.json`` + readable weights (+ every shard of an index); step from trainer_state.json."""
    config = read_json(directory / "config.json", "a Hugging Face model config")
    if not isinstance(config, dict) or not (isinstance(config.get("model_type"), str) or config.get("architectures")):
        raise DataError(f"{directory / 'config.json'}: no model_type or architectures; not a Hugging Face model config")
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (directory / index_name).is_file():
            _check_weight_index(directory / index_name)
    safetensors_files = sorted(directory.glob("*.safetensors"))
    bin_files = sorted(directory.glob("pytorch_model*.bin"))
    if not safetensors_files and not bin_files:
        raise ConfigError(f"{directory}: Hugging Face config.json but no weights (expected *.safetensors or "
                          f"pytorch_model*.bin); found: {found(directory)}")
    for file in safetensors_files:
        _check_safetensors(file)
    for file in bin_files:
        _check_torch_bin(file)
    step, source = None, None
    if (directory / "trainer_state.json").is_file():
        state = read_json(directory / "trainer_state.json", "transformers' trainer state")
        if isinstance(state, dict) and isinstance(state.get("global_step"), int) and state["global_step"] >= 0:
            step, source = state["global_step"], "trainer_state.json"
    architectures = config.get("architectures") or []
    info = {"hf_config": {k: config.get(k) for k in ("model_type", "architectures", "vocab_size") if k in config},
            "hf_architecture": architectures[0] if architectures else None,
            "weights": [p.name for p in safetensors_files or bin_files]}
    if config.get("model_type") == "nemotron_h":
        info.update(_nemotron_h_architecture(config, directory))
    links = {p.name: p for p in directory.iterdir() if p.name != "metadata.json"}
    return Checkpoint("hf", "hugging face", directory, step, source, links=links, info=info)


def _nemotron_h_architecture(config: dict[str, Any], directory: Path) -> dict[str, Any]:
    """``architecture`` (architecture: hybrid) of a NemotronH config.json, or nothing (with a
    warning) when our model config cannot express it."""
    from nemotron.schemas.model import model_config
    from nemotron.train.hf_nemotron_h import architecture_from_hf

    try:
        architecture = architecture_from_hf(config, directory.name)
        model_config(architecture)
    except (ValueError, KeyError, TypeError, ConfigError) as err:
        print(f"warning: {directory / 'config.json'}: {err}; the model's architecture is not recorded", file=sys.stderr)
        return {}
    return {"architecture": architecture, "architecture_source": "config.json (NemotronH, nemotron.train.hf_nemotron_h)"}


def _check_weight_index(file: Path) -> None:
    """Every shard a weight index lists is a file beside it."""
    index = read_json(file, "a weight index ({'weight_map': {tensor: file}})")
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise DataError(f"{file}: no weight_map")
    outside = sorted({str(f) for f in weight_map.values() if Path(str(f)).name != f})
    if outside:
        raise DataError(f"{file} lists {outside[0]}, not a file of {file.parent}")
    missing = sorted({f for f in weight_map.values() if not (file.parent / f).is_file()})
    if missing:
        raise DataError(f"{file} lists {missing[0]}, which is missing"
                        + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))


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
