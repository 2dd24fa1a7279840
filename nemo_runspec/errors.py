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

    def __reduce__(self):  # keep the hint when the error crosses a process boundary
        return (_rebuild_error, (type(self), str(self), self.hint))


class InvalidNameError(NemotronError, ValueError):
    """An artifact name, alias or URI breaks the documented syntax."""


class ArtifactNotFoundError(NemotronError, LookupError):
    """A name, version or alias that the registry does not hold."""

    default_hint = "`nemotron artifact list` shows the names, versions and aliases the registry holds"


class ArtifactDeletedError(NemotronError, LookupError):
    """The version exists, but garbage collection removed its data."""


class ArtifactChangedError(NemotronError):
    """An artifact's files differ from the manifest recorded when it was published."""

    default_hint = "`nemotron artifact verify NAME:VERSION --content` lists every difference"


class TypeMismatchError(NemotronError, TypeError):
    """A name bound to one artifact type used with another."""


class CorruptRecordError(NemotronError):
    """A manifest or metadata.json that cannot be parsed or validated."""

    default_hint = "`nemotron artifact verify` lists every problem in the registry"


class DataError(NemotronError):
    """Input data that cannot be used (malformed record, missing field, bad encoding)."""


class Interrupted(NemotronError):
    """Work stopped on request (a signal) after saving what it needs to resume; the exit
    status says so (75, EX_TEMPFAIL), so a scheduler can tell it from a failure."""

    exit_status = 75  # nemo_runspec.stop_signals.STOPPED_EXIT


class ConfigError(NemotronError):
    """A configuration file or config value that cannot be used (env.toml, ${art:...})."""


def _rebuild_error(cls: type[NemotronError], message: str, hint: str | None) -> NemotronError:
    return cls(message, hint=hint)


def user_error(err: BaseException | None) -> NemotronError | None:
    """The NemotronError behind ``err``, following causes and contexts (OmegaConf and
    Hydra wrap errors raised inside resolvers)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, NemotronError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def report_error(err: BaseException) -> int:
    """Print ``err`` as ``error: ...`` and ``hint: ...`` on stderr; return the exit status."""
    import sys

    cause = user_error(err)
    if cause is not None:
        message, hint = str(cause), cause.hint
    else:
        message, hint = f"{type(err).__name__}: {err}", None
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    print(f"hint: {hint or 'run again with --debug for the traceback'}", file=sys.stderr)
    return getattr(cause, "exit_status", 1)


def run_job_file(argv: list[str], work) -> int:
    """Entry of a job process (``python -m ... JOB.json``): ``work(job)``, then an exit status.

    A failure prints one line per process (the parent reports which step failed); a job with
    ``"debug": true``, or one started under ``nemotron --debug`` (NEMOTRON_DEBUG=1, which every
    child inherits), lets the traceback through instead."""
    import json
    import os
    from pathlib import Path

    job = json.loads(Path(argv[0]).read_text())
    try:
        work(job)
    except Exception as err:
        if job.get("debug") or os.environ.get("NEMOTRON_DEBUG") == "1":
            raise
        return report_error(err)
    return 0
