"""Megatron-Core warns at import about optional GPU libraries (Apex, TransformerEngine) and
about deprecated defaults it sets itself; none of it is actionable for a run, and on a CPU it
buries the one line that matters. One place says which warnings those are. Torch-free."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

_FILTERS = (
    (UserWarning, r"megatron\."),
    (DeprecationWarning, r"(megatron|torch)\."),
    (FutureWarning, r"(megatron|torch)\."),
)


def silence_megatron_warnings() -> None:
    """For a process's entry point (training, export): from now on, in this process."""
    for category, module in _FILTERS:
        warnings.filterwarnings("ignore", category=category, module=module)


@contextlib.contextmanager
def megatron_quietly() -> Iterator[None]:
    """For one import of megatron.core in a process that otherwise keeps its warnings: all of
    the import's warnings (they come from the modules it pulls in, torch's among them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
