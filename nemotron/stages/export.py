"""Export step: a Megatron ModelArtifact -> a Hugging Face ``transformers`` directory.

``nemotron <family> model export hf NAME[:VER] OUT`` checks everything before any work starts
(the source is a complete Megatron checkpoint of a model transformers has a class for: a
Llama-style GPT (``LlamaForCausalLM``) or a Nemotron-H hybrid (``NemotronHForCausalLM``), see
:func:`nemotron.kit.model_formats.incompatibilities`; the tokenizer it was
trained with can be found and is byte-identical, OUT is new or empty, the name to log is
free for a ModelArtifact), converts the weights in a child process
(``python -m nemotron.train.hf_export``, so Megatron's process-wide state never lives in this
one), copies the tokenizer files beside them and logs the directory as a ``ModelArtifact``
with ``format=hf``, the source's stage and step, and ``parent_model`` = the pinned source.

OUT is written as a hidden sibling directory and renamed into place at the end: a failed or
killed export leaves no half-written OUT and logs nothing, and an existing non-empty OUT is
never overwritten. An SFT model gets the chat template its SFT data was rendered with (when it
can be recovered byte for byte), a pretrained model its tokenizer's own.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from nemo_runspec import contents, integrity
from nemo_runspec.artifacts import current_tracking, log_artifact, setup_artifact_tracking
from nemo_runspec.errors import ArtifactNotFoundError, ConfigError, NemotronError, TypeMismatchError
from nemotron.stages.step import check_name_free
from nemotron.train.child_process import run_module

FORMATS = ("hf",)
# Copied from the tokenizer's directory when present (tokenizer_config.json is rewritten).
_TOKENIZER_FILES = ("tokenizer.json", "special_tokens_map.json")
# Tokens that close a turn in common chat templates: generation of a chat model stops at them too.
_TURN_ENDS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>")
_EXPORTABLE = ("dense GPT models export as Llama (RoPE, RMSNorm, SwiGLU, no biases), hybrid ones as Nemotron-H "
               "(no position embedding, RMSNorm, squared ReLU, a sigmoid router and a shared expert); "
               "the export builds the model on the CPU")


class ExportFailed(NemotronError):
    """The conversion process exited with an error."""


def export_hf(source: str, out: str | os.PathLike[str], *, name: str | None = None, tokenizer: str | None = None,
              root: str | os.PathLike[str] | None = None, verify_inputs: bool = False):
    """Export the Megatron ModelArtifact ``source`` to ``out``; return the logged ModelArtifact.
    ``verify_inputs``: digest every file of the source first, not only those whose size or
    mtime moved."""
    from nemotron.kit.artifacts import ModelArtifact

    tracking = setup_artifact_tracking({"root": str(root)} if root else None)
    record = tracking.resolve(source)
    _check_source(record)
    integrity.require_unchanged(record, contents.FULL if verify_inputs else contents.QUICK)
    out = Path(out).expanduser().absolute()
    _check_out(out)
    name = check_name_free(tracking, name or f"{record.name}-hf", "ModelArtifact")
    exported = export_to_directory(record, out, tokenizer=tokenizer, tracking=tracking)
    result, loaded, vocab_size = exported["result"], exported["tokenizer"], exported["vocab_size"]
    architecture, checkpoint, template_info = record.metadata["architecture"], Path(record.path), exported["chat_template"]

    artifact = ModelArtifact(
        path=out,
        stage=record.fields["stage"],
        step=record.fields["step"],
        format="hf",
        final_loss=record.fields.get("final_loss"),
        tokens_seen=record.fields.get("tokens_seen"),
        parent_model=record.uri,
        metadata={
            "source": record.uri,
            "source_checkpoint": str(checkpoint),
            "source_training_data": record.fields.get("training_data"),
            "architecture": architecture,
            "hf_architecture": result["config"]["architectures"][0],
            "hf_config": result["config"],
            "parameters": result["parameters"],
            "vocab_size": vocab_size,
            "padded_vocab_size": result["padded_vocab_size"],
            "tokenizer_sha256": loaded.info.sha256,
            "tokenizer_path": loaded.info.path,
            "chat_template": template_info,
            "dtype": "float32",
            "config": record.metadata.get("config"),
        },
    )
    log_artifact(artifact, tracking, name=name)
    print(f"logged {artifact.name}:v{artifact.version}: {record.ref} (step {artifact.step}) as "
          f"{result['config']['architectures'][0]}, "
          f"{result['parameters']:,} parameters, vocabulary {vocab_size} -> {out}")
    return artifact


def hugging_face_directory(record, target: Path) -> Path:
    """A Hugging Face directory of the model ``record``: its own when it is one, else its export
    into ``target`` (made once; a step's own copy, not logged)."""
    if record.fields.get("format") == "hf":
        return Path(record.path)
    if not (target / "config.json").is_file():
        export_to_directory(record, target)
    return target


def export_to_directory(record, out: Path, *, tokenizer: str | None = None, tracking=None) -> dict[str, Any]:
    """Convert the checked Megatron model ``record`` into a new ``out``; nothing is logged.

    Used by ``export_hf`` and by steps that need a Hugging Face copy of a model for
    themselves (RL's initial policy)."""
    tracking = tracking or current_tracking()
    _check_source(record)
    architecture, checkpoint = record.metadata["architecture"], Path(record.path)
    loaded = _tokenizer(tracking, record, tokenizer)
    vocab_size = int(record.metadata.get("vocab_size") or loaded.vocab_size)
    if vocab_size != loaded.vocab_size:
        raise ConfigError(f"tokenizer {loaded.info.path} has {loaded.vocab_size} tokens, {record.ref} was trained "
                          f"with {vocab_size}", hint="pass the tokenizer the model was trained with (--tokenizer PATH)")
    source = Path(loaded.info.path).parent
    template, template_info = _chat_template(tracking, record, source)
    own_config = _tokenizer_config(source)
    template = _exported_template(source, own_config, template)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create {out.parent}: {err.strerror}") from None
    staging = out.parent / f".{out.name}.export-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        turn_ends = _turn_ends(template if template is not None else own_config.get("chat_template"), loaded)
        result = _convert(checkpoint, architecture, vocab_size, staging, loaded, turn_ends)
        _copy_tokenizer(source, own_config, staging, loaded, template, int(architecture["seq_length"]))
        try:
            os.rename(staging, out)  # replaces only an empty directory
        except OSError as err:
            raise ConfigError(f"{out} appeared or filled up during the export ({err.strerror}); nothing was overwritten",
                              hint="choose a new output directory") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"result": result, "tokenizer": loaded, "vocab_size": vocab_size, "chat_template": template_info}


def _check_source(record) -> None:
    """A complete Megatron checkpoint of a model with a transformers counterpart, or a one-line error."""
    from nemotron.kit.model_formats import hf_architecture, incompatibilities, missing_checkpoint_files

    if record.type != "ModelArtifact":
        raise TypeMismatchError(f"{record.ref} is a {record.type}, not a ModelArtifact",
                                hint="export a model logged by `pretrain` or `sft`")
    if record.fields.get("format") != "megatron":
        raise ConfigError(f"{record.ref} is already a {record.fields.get('format')!r} checkpoint, not a Megatron one",
                          hint=f"export its parent ({record.fields.get('parent_model') or 'the Megatron model'})")
    checkpoint = Path(record.path)
    if missing := missing_checkpoint_files(checkpoint):
        raise ConfigError(f"{record.ref} checkpoint {checkpoint} is incomplete (missing {missing[0].relative_to(checkpoint)})",
                          hint="export a model logged by `pretrain`/`sft` whose checkpoint directory is intact")
    architecture = record.metadata.get("architecture")
    if not isinstance(architecture, dict):
        raise ConfigError(f"{record.ref} does not record its model architecture (metadata 'architecture')",
                          hint="export a model logged by `pretrain` or `sft`")
    problems = incompatibilities(architecture)
    if problems:
        raise ConfigError(f"{record.ref} (model {architecture.get('name')!r}) cannot be a {hf_architecture(architecture)}: "
                          f"{'; '.join(problems)}", hint=_EXPORTABLE)


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output {out} exists and is not a directory", hint="choose a new output directory")
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"output directory {out} exists and is not empty; refusing to overwrite it",
                          hint="choose a new (or empty) output directory")


def _tokenizer(tracking, record, option: str | None):
    """The tokenizer the source was trained with: ``--tokenizer``, else its training data's."""
    from nemotron.data.tokenizer import load_tokenizer

    hint = "pass the tokenizer the model was trained with: --tokenizer PATH (a tokenizer directory or tokenizer.json)"
    path = str(Path(option).expanduser()) if option else _recorded_tokenizer_path(tracking, record)
    if path is None:
        raise ConfigError(f"{record.ref} does not record the tokenizer it was trained with", hint=hint)
    try:
        loaded = load_tokenizer(path)
    except ConfigError as err:
        raise ConfigError(str(err), hint=None if option else hint) from None
    expected = record.metadata.get("tokenizer_sha256")
    if expected and loaded.info.sha256 != expected:
        raise ConfigError(f"tokenizer {loaded.info.path} is not the one {record.ref} was trained with "
                          f"(sha256 {loaded.info.sha256[:12]}..., trained with {expected[:12]}...)", hint=hint)
    return loaded


def _recorded_tokenizer_path(tracking, record) -> str | None:
    data = _training_data(tracking, record)
    if data is not None and isinstance(data.fields.get("tokenizer"), dict) and data.fields["tokenizer"].get("path"):
        return str(data.fields["tokenizer"]["path"])
    if record.metadata.get("tokenizer_path"):  # `model import --tokenizer`
        return str(record.metadata["tokenizer_path"])
    config = record.metadata.get("config") or {}
    for section in ("data", "tokenizer"):
        value = (config.get(section) or {}).get("tokenizer_path" if section == "data" else "path")
        if value:
            return str(value)
    return None


def _training_data(tracking, record):
    ref = record.fields.get("training_data")
    if not ref:
        return None
    try:
        return tracking.resolve(ref)
    except ArtifactNotFoundError:
        return None


def _chat_template(tracking, record, tokenizer_dir: Path) -> tuple[str | None, dict[str, Any] | None]:
    """The template the SFT data was rendered with, when it can be recovered exactly."""
    data = _training_data(tracking, record)
    if data is None or data.type != "SFTDataArtifact":
        return None, None
    from nemotron.data.chat import load_template

    recorded = data.fields.get("chat_template") or {}
    spec = ((data.metadata.get("config") or {}).get("data_prep") or {}).get("chat_template")
    try:
        template = load_template(str(spec), tokenizer_dir) if spec else None
    except ConfigError:
        template = None
    if template is None or template.sha256 != recorded.get("sha256"):
        print(f"warning: the chat template {data.ref} was rendered with ({recorded.get('name')!r}) cannot be "
              "recovered byte for byte; the export keeps the tokenizer's own chat template", file=sys.stderr)
        return None, None
    return template.source, {"name": template.name, "sha256": template.sha256, "from": data.uri}


def _exported_template(source: Path, own_config: dict[str, Any], template: str | None) -> str | None:
    """The chat template to fold into tokenizer_config.json: the SFT data's, else a
    chat_template.jinja beside the tokenizer; None keeps tokenizer_config.json's own."""
    if template is not None or isinstance(own_config.get("chat_template"), (str, list)):
        return template
    jinja = source / "chat_template.jinja"
    return jinja.read_text(encoding="utf-8") if jinja.is_file() else None


def _tokenizer_config(source: Path) -> dict[str, Any]:
    config_file = source / "tokenizer_config.json"
    return json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}


def _turn_ends(template: str | list | None, loaded) -> list[int]:
    """Ids of the end-of-turn tokens the exported chat template (a string, or the tokenizer's
    named templates) writes, besides end-of-document."""
    text = template if isinstance(template, str) else json.dumps(template or "")
    ids = [loaded.tokenizer.token_to_id(token) for token in _TURN_ENDS if token in text]
    return [i for i in ids if i is not None and i != loaded.eod_id]


def _convert(checkpoint: Path, architecture: dict[str, Any], vocab_size: int, staging: Path, loaded,
             turn_ends: list[int]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="nemotron-export-") as scratch:
        job_file, result_file = Path(scratch) / "job.json", Path(scratch) / "result.json"
        job_file.write_text(json.dumps({
            "checkpoint": str(checkpoint),
            "architecture": architecture,
            "vocab_size": vocab_size,
            "token_ids": {"bos": loaded.bos_id, "eos": loaded.eod_id, "pad": loaded.pad_id, "turn_ends": turn_ends},
            "out": str(staging),
            "result": str(result_file),
        }), encoding="utf-8")
        return run_module("nemotron.train.hf_export", [job_file], result=result_file,
                          what=f"the conversion of {checkpoint}", consequence="nothing was written or logged",
                          error=ExportFailed, hint="the lines above are the conversion process's own error")


def _copy_tokenizer(source: Path, own_config: dict[str, Any], target: Path, loaded, template: str | None,
                    max_length: int) -> None:
    """tokenizer.json as is; tokenizer_config.json with the chat template folded in."""
    for file in _TOKENIZER_FILES:
        if (source / file).is_file():
            shutil.copyfile(source / file, target / file)
    config = dict(own_config) or {
        "tokenizer_class": "PreTrainedTokenizerFast", "eos_token": loaded.tokenizer.id_to_token(loaded.eod_id)}
    if template is not None:
        config["chat_template"] = template
    config["model_max_length"] = max_length
    (target / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


