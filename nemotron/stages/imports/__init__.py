"""Import steps: checkpoints and data made elsewhere -> typed artifacts.

``nemotron <family> model import STAGE PATH`` and ``nemotron <family> data import STAGE PATH``
check that PATH has a layout the pipeline can read, compute what the artifact type records,
and log it. Everything is checked before anything is written or logged: a bad input is one
``NemotronError`` line (missing path, empty folder, unexpected layout with what was found,
a symlink that escapes PATH or loops, a corrupt shard or a Parquet without the packed columns).

One module per artifact kind: :mod:`.model` (with :mod:`.checkpoints`, the layouts it
recognises), :mod:`.pretrain_data`, :mod:`.sft_data`, :mod:`.rl_data`. Each goes through
:func:`nemotron.stages.step.run_step` into a small directory of its own (:mod:`.output`)
whose fingerprint covers the imported files (names, sizes, mtimes) and the options, so
importing the same thing again returns the version already logged.
"""

from __future__ import annotations

import os

from nemo_runspec.errors import ConfigError
from nemotron.stages.imports.model import import_model
from nemotron.stages.imports.options import check_stage
from nemotron.stages.imports.pretrain_data import import_pretrain
from nemotron.stages.imports.rl_data import import_rl
from nemotron.stages.imports.sft_data import import_sft

__all__ = ["import_data", "import_model"]


def import_data(family: str, stage: str, path: str | os.PathLike[str], *, name: str | None = None,
                tokenizer: str | None = None, chat_template: str | None = None,
                root: str | os.PathLike[str] | None = None):
    """Log the data at ``path`` as the data artifact of ``stage``; return the artifact."""
    check_stage(stage)
    if chat_template is not None and stage != "sft":
        raise ConfigError("--chat-template applies to sft data only")
    name = name or f"{family}-{stage}-data-imported"
    if stage == "pretrain":
        return import_pretrain(path, name, tokenizer, root)
    if stage == "sft":
        return import_sft(path, name, tokenizer, chat_template, root)
    return import_rl(path, name, tokenizer, root)
