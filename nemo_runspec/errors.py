"""User-facing errors: each renders as one line plus an optional hint.

The CLI prints ``str(error)`` and ``error.hint`` and exits non-zero; ``--debug`` shows the
traceback instead. Library callers catch :class:`NemotronError` or one of its subclasses.
"""

from __future__ import annotations


class NemotronError(Exception):
    """An error caused by input the user can fix; never a bug in nemotron itself."""

    default_hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.hint = hint or self.default_hint


class InvalidNameError(NemotronError, ValueError):
    """An artifact name, alias or URI breaks the documented syntax."""


class ArtifactNotFoundError(NemotronError, LookupError):
    """A name, version or alias that the registry does not hold."""

    default_hint = "`nemotron artifact list` shows the names, versions and aliases the registry holds"


class TypeMismatchError(NemotronError, TypeError):
    """A name bound to one artifact type used with another."""


class CorruptRecordError(NemotronError):
    """A manifest or metadata.json that cannot be parsed or validated."""

    default_hint = "`nemotron artifact verify` lists every problem in the registry"


class ConfigError(NemotronError):
    """A configuration file or config value that cannot be used (env.toml, ${art:...})."""
