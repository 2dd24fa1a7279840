"""Training metrics: one JSON line per step in the run directory, and a loss-curve PNG.

The same records also go to a metrics sink when the job's ``tracking`` section names one
(``tracking=wandb``: a W&B run, see ``nemo_runspec.registry.wandb_backend``). Only rank 0
keeps a ``MetricsLog``, so only rank 0 talks to the tracker.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from nemo_runspec.errors import ConfigError

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss.png"


class MetricsSink(Protocol):
    """Somewhere besides metrics.jsonl that receives each step's record."""

    def log(self, record: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


def metrics_sink(run_dir: Path, job: Mapping[str, Any] | None) -> MetricsSink | None:
    """The sink named by ``job["tracking"]["backend"]`` (none or wandb), started for this run."""
    tracking = (job or {}).get("tracking") or {}
    backend = tracking.get("backend") or "none"
    if backend == "none":
        return None
    if backend == "wandb":
        from nemo_runspec.registry.wandb_backend import WandbMetricsRun  # imports wandb only now

        return WandbMetricsRun.start(run_dir, tracking, job)
    raise ConfigError(f"tracking.backend={backend!r} is not one of none, wandb",
                      hint="pick a tracker with tracking=none or tracking=wandb")


class MetricsLog:
    """Appends ``{"step": ..., ...}`` records; a resumed run first drops records past its step.

    ``job`` (the training job) may name a tracker in ``job["tracking"]``; every record then
    goes there too.
    """

    def __init__(self, run_dir: Path, resume_step: int, job: Mapping[str, Any] | None = None):
        self.path = run_dir / METRICS_FILE
        kept = [r for r in read_metrics(self.path) if r["step"] <= resume_step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self.sink = metrics_sink(run_dir, job)  # before opening: a config error leaves no handle
        self._file = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self.sink is not None:
            self.sink.log(record)

    def close(self) -> None:
        self._file.close()
        if self.sink is not None:
            self.sink.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut short by a kill: everything after it is gone too
    return records


LOSS_SERIES = (("loss", "train loss"), ("val_loss", "validation loss"))


def plot_loss(run_dir: Path, series: tuple[tuple[str, str], ...] = LOSS_SERIES, filename: str = PLOT_FILE,
              ylabel: str = "loss") -> Path:
    """A PNG of the metrics file's ``series`` (key, label) against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(run_dir / METRICS_FILE)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for key, label in series:
        points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
        if points:
            ax.plot(*zip(*points), "o-" if len(points) < 10 else "-", label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = run_dir / filename
    fig.savefig(out)
    plt.close(fig)
    return out
