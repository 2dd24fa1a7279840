"""A progress bar over work units that also shows running totals and rates (docs/s, tokens/s)."""

from __future__ import annotations

import time
from collections.abc import Iterable


class RateProgress:
    """``with RateProgress("prep", total=8, counters=("docs", "tokens")) as bar: bar.add(docs=3)``."""

    def __init__(self, description: str, total: int, counters: Iterable[str], *, enabled: bool = True):
        self.description = description
        self.total = total
        self.counters = {name: 0 for name in counters}
        self.enabled = enabled
        self._progress = None
        self._task = None
        self._start = time.perf_counter()
        self.note = ""

    def __enter__(self) -> RateProgress:
        self._start = time.perf_counter()
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rates]}"), TimeElapsedColumn(),
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.description, total=self.total, rates="")
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._refresh()
            self._progress.__exit__(*exc)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    def rate(self, name: str) -> float:
        return self.counters[name] / max(self.elapsed, 1e-9)

    def add(self, note: str | None = None, **counts: int) -> None:
        """Add to the counters; ``note`` replaces the free text shown after the rates (loss, lr)."""
        for name, value in counts.items():
            self.counters[name] += value
        if note is not None:
            self.note = note
        self._refresh()

    def unit_done(self, count: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, count)
        self._refresh()

    def _refresh(self) -> None:
        if self._progress is None:
            return
        rates = "  ".join(f"{_human(v)} {k} ({_human(self.rate(k))}/s)" for k, v in self.counters.items())
        self._progress.update(self._task, rates=f"{rates}  {self.note}".rstrip())


def _human(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.1f}{unit}"
    return f"{value:.0f}"
