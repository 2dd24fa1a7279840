"""Our output is ours: third-party warnings and progress bars we did not ask for stay out of a
run's output (the libraries' FutureWarnings and DeprecationWarnings, transformers' and
huggingface_hub's ``Loading weights`` / ``Writing model shards`` bars, their advisory log lines).
``--debug`` shows them again. nemotron's own warnings and progress bars (rich, with rates) are
untouched.

The CLI calls :func:`quiet_third_party` at start: it sets the libraries' own switches in the
environment, which every child process (training, export, RL) inherits, and marks ``--debug``
there too; each child's entry point calls it again for its own warnings filters. Torch-free.
"""

from __future__ import annotations

import os
import warnings

DEBUG_VAR = "NEMOTRON_DEBUG"
# The libraries' switches: log levels and progress bars of transformers, huggingface_hub,
# datasets and accelerate, and tqdm's (TRL's and datasets' bars).
_QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "DATASETS_VERBOSITY": "error",
    "ACCELERATE_LOG_LEVEL": "error",
    "TQDM_DISABLE": "1",
}
# Warnings raised from any module but ours (a regex matched at the start of the module name).
_NOT_OURS = r"(?!nemotron\b|nemo_runspec\b)"


def quiet_third_party(debug: bool | None = None) -> None:
    """Silence third-party warnings and progress bars in this process and its children, unless
    ``debug`` (default: what the environment says, so a child follows its parent)."""
    if debug is None:
        debug = os.environ.get(DEBUG_VAR) == "1"
    if debug:
        os.environ[DEBUG_VAR] = "1"
        return
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=_NOT_OURS)
