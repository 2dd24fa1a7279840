"""Training metrics: one JSON line per step in the run directory, and a loss-curve PNG.

The same records also go to a metrics sink when the job's ``tracking`` section names one
(``tracking=wandb``: a W&B run, :class:`WandbMetricsRun`; its settings, as for the artifact
mirror, come from ``nemo_runspec.registry.wandb_settings``). Only rank 0 keeps a
``MetricsLog``, so only rank 0 talks to the tracker.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from nemo_runspec.errors import ConfigError

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss.png"
WANDB_RUN_ID_FILE = "wandb-run-id"   # in a training run directory: the W&B run it resumes
WANDB_CONFIG_KEYS = ("model", "train", "optimizer", "data")   # the job sections a W&B run records as its config


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
        return WandbMetricsRun.start(run_dir, tracking, job)
    raise ConfigError(f"tracking.backend={backend!r} is not one of none, wandb",
                      hint="pick a tracker with tracking=none or tracking=wandb")


class WandbMetricsRun:
    """The W&B run of one training run directory: rank 0's metric records, step by step.

    The run id is kept in the run directory, so a resumed training continues the same W&B run
    (W&B ignores, with a warning, steps it already has from before the crash).
    """

    def __init__(self, run: Any):
        self.run = run

    @classmethod
    def start(cls, run_dir: Path, tracking: Mapping[str, Any], job: Mapping[str, Any]) -> WandbMetricsRun | None:
        from nemo_runspec.registry.wandb_settings import import_wandb, prepare_dirs, run_settings, wandb_settings

        settings = wandb_settings(tracking, where="tracking")
        if settings.mode == "disabled":
            return None
        wandb = import_wandb("tracking=wandb")
        run_dir = Path(run_dir)
        directory = prepare_dirs(settings.dir or Path(os.environ.get("WANDB_DIR") or run_dir))
        id_file = run_dir / WANDB_RUN_ID_FILE
        run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:16]
        id_file.write_text(run_id)
        config = {k: job[k] for k in WANDB_CONFIG_KEYS if k in job}
        run = wandb.init(
            project=settings.project,
            entity=settings.entity,
            dir=str(directory),
            mode=settings.mode,
            id=run_id,
            resume="allow",
            name=run_dir.parent.name,
            job_type=str(job.get("stage", "train")),
            config={**config, "run_dir": str(run_dir)},
            settings=run_settings(wandb),
        )
        return cls(run)

    def log(self, record: Mapping[str, Any]) -> None:
        # Charts take numbers; per-expert shares stay in metrics.jsonl (expert_load_max is charted).
        scalars = {k: v for k, v in record.items() if k != "step" and isinstance(v, (int, float))}
        self.run.log(scalars, step=int(record["step"]))

    def close(self) -> None:
        self.run.finish()


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
