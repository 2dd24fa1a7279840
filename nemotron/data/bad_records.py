"""Bad input records: the error one raises, and the rule that fails the run or counts and skips it.

Every data step reads records that may be unusable (malformed JSON, a missing field, a
conversation its template cannot render). The code that finds the fault raises
:class:`RecordError` with a ``reason``; the step then applies ``data_prep.on_error``: ``fail``
stops with a :class:`DataError` naming the record, ``skip`` counts it under its reason.
"""

from __future__ import annotations

from collections import Counter

from nemo_runspec.errors import DataError


class RecordError(ValueError):
    """A record that cannot be used; ``reason`` is the counter it is skipped under."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class SkipCounter(Counter):
    """Records skipped, by reason."""


def reject(reason: str, message: str, on_error: str, skipped: SkipCounter) -> None:
    """Fail with ``message`` (``on_error`` other than ``skip``) or count the record under ``reason``."""
    if on_error != "skip":
        raise DataError(message, hint="fix the record, or set data_prep.on_error=skip to count and skip bad records")
    skipped[reason] += 1
