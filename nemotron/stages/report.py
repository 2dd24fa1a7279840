"""A model's chain in one picture: its pretraining and SFT loss, its RL reward and every
evaluation of each model from the pretrained root to it.

``collect`` walks ``parent_model`` from a ModelArtifact back to its root and gathers the
EvalResultArtifacts of each model; ``rows`` / ``table`` are the evaluation numbers as data and
as a rich table; ``write_report`` draws ``report.png`` and a self-contained ``report.html``.
Everything is read from the registry and the run directories its records name: nothing is
trained or evaluated here. ``nemotron artifact report`` is the command that calls these.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nemo_runspec import atomic
from nemo_runspec.errors import ConfigError, NemotronError
from nemo_runspec.refs import URI_SCHEME, ArtifactRef, is_artifact_ref
from nemo_runspec.registry.record import ArtifactRecord
from nemotron.train.metrics import METRICS_FILE, read_metrics

if TYPE_CHECKING:
    from rich.table import Table

    from nemo_runspec.artifacts.tracking import ArtifactTracking

PNG_FILE = "report.png"
HTML_FILE = "report.html"
COLUMNS = ("model", "stage", "held-out loss", "ends turn", "accuracy", "sampled accuracy")
STAGE_TITLES = {"pretrain": "pretraining loss", "sft": "SFT loss", "rl": "RL reward"}
_MODEL = "ModelArtifact"
_EVAL = "EvalResultArtifact"


@dataclass(frozen=True)
class ChainModel:
    """One model of a chain and its evaluations: the newest of each (evaluation, weights, split)."""

    record: ArtifactRecord
    evals: tuple[ArtifactRecord, ...] = ()

    @property
    def ref(self) -> str:
        return self.record.ref

    @property
    def stage(self) -> str:
        return str(self.record.fields.get("stage") or "-")

    def eval_of(self, evaluation: str, weights: str = "trained") -> ArtifactRecord | None:
        """Its ``evaluation`` ("loss" or "accuracy") of ``weights``; a held-out split before
        the train split, then the newest."""
        found = [e for e in self.evals
                 if e.fields.get("evaluation") == evaluation and e.fields.get("weights", "trained") == weights]
        if not found:
            return None
        return min(found, key=lambda e: (e.fields.get("split") == "train", -e.created_at.timestamp()))

    def metrics_path(self) -> Path | None:
        """The metrics.jsonl its training run wrote, when the record names one."""
        if self.record.metadata.get("metrics"):
            return Path(self.record.metadata["metrics"])
        if self.record.metadata.get("run_dir"):
            return Path(self.record.metadata["run_dir"]) / METRICS_FILE
        return None


@dataclass(frozen=True)
class Chain:
    """The models from the root (pretrain) to the one asked for, in training order."""

    models: tuple[ChainModel, ...]

    @property
    def final(self) -> ChainModel:
        return self.models[-1]

    def of_stage(self, stage: str) -> list[ChainModel]:
        return [m for m in self.models if m.stage == stage]


def collect(tracking: ArtifactTracking, ref: str) -> Chain:
    """The chain of the ModelArtifact ``ref`` names: it and its parents (root first), each
    with its evaluations. Raises ConfigError when ``ref`` or a parent is not a model."""
    record = tracking.resolve(ref)
    lineage: list[ArtifactRecord] = []
    while record is not None:
        if record.type != _MODEL:
            if lineage:
                what = f"{lineage[-1].ref}'s parent_model {record.ref}"
            elif str(ref).removeprefix(URI_SCHEME) == record.ref:
                what = record.ref
            else:
                what = f"{ref} ({record.ref})"  # name the version an alias or latest chose
            raise ConfigError(f"{what} is not a ModelArtifact (type {record.type})",
                              hint="a report follows a model's chain; `nemotron artifact list` shows each name's type")
        if any(r.uri == record.uri for r in lineage):
            break  # a parent_model loop: each model once is all a report can show
        lineage.append(record)
        parent = _pinned(record, record.fields.get("parent_model"))
        record = tracking.resolve(parent) if parent else None
    evals = _evals_by_model(tracking, {r.uri for r in lineage})
    return Chain(tuple(ChainModel(r, tuple(evals.get(r.uri, {}).values())) for r in reversed(lineage)))


def _evals_by_model(tracking: ArtifactTracking, uris: set[str]) -> dict[str, dict[tuple, ArtifactRecord]]:
    # One pass over the registry: model uri -> (evaluation, weights, split) -> the newest record
    # (by time: evaluations of one model may be logged under several names).
    found: dict[str, dict[tuple, ArtifactRecord]] = {}
    for record in tracking.registry.records():
        if record.type != _EVAL:
            continue
        model = _pinned(record, record.fields.get("model"))
        if model not in uris:
            continue
        key = (record.fields.get("evaluation"), record.fields.get("weights", "trained"), record.fields.get("split"))
        best = found.setdefault(model, {}).get(key)
        if best is None or (record.created_at, record.version) > (best.created_at, best.version):
            found[model][key] = record
    return found


def _pinned(record: ArtifactRecord, reference: str | None) -> str | None:
    """``reference`` (a field of ``record``) as a pinned ``art://name:vN``. Typed fields keep
    what their author wrote (``name:latest`` is allowed), but publishing pinned the same
    reference among the record's inputs, so an unpinned one is looked up there."""
    if not reference or not is_artifact_ref(reference):
        return None
    try:
        parsed = ArtifactRef.parse(reference)
    except NemotronError:
        return None
    if parsed.version is not None:
        return parsed.uri
    for uri in record.inputs:
        if is_artifact_ref(uri) and ArtifactRef.parse(uri).name == parsed.name:
            return ArtifactRef.parse(uri).uri
    return None


# -- the evaluation numbers -----------------------------------------------------------------


def rows(chain: Chain) -> list[dict[str, Any]]:
    """One dict per table row: model (label), stage, ref, loss, format_rate, accuracy (greedy),
    sampled_accuracy, pass_at_k, samples (None where not measured). A model with an evaluation of its initial weights
    gets an "<ref> untrained" row before its own."""
    out = []
    for model in chain.models:
        if any(e.fields.get("weights") == "initial" for e in model.evals):
            out.append(_row(model, "initial", f"{model.ref} untrained", "initial"))
        out.append(_row(model, "trained", model.ref, model.stage))
    return out


def _row(model: ChainModel, weights: str, label: str, stage: str) -> dict[str, Any]:
    loss, accuracy = model.eval_of("loss", weights), model.eval_of("accuracy", weights)

    def field(record: ArtifactRecord | None, name: str) -> float | None:
        return None if record is None else record.fields.get(name)

    return {"model": label, "stage": stage, "ref": model.ref, "weights": weights,
            "loss": field(loss, "loss"), "format_rate": field(accuracy, "format_rate"),
            "accuracy": field(accuracy, "accuracy"), "sampled_accuracy": field(accuracy, "sampled_accuracy"),
            "pass_at_k": field(accuracy, "pass_at_k"), "samples": field(accuracy, "samples")}


def cells(row: dict[str, Any]) -> tuple[str, ...]:
    """A row of ``rows`` as the text of the COLUMNS."""
    sampled = _percent(row.get("sampled_accuracy"))
    if row.get("sampled_accuracy") is not None and row.get("pass_at_k") is not None:
        sampled += f" (pass@{row.get('samples') or 'k'} {_percent(row['pass_at_k'])})"
    loss = "-" if row["loss"] is None else f"{row['loss']:.4f}"
    return row["model"], row["stage"], loss, _percent(row["format_rate"]), _percent(row["accuracy"]), sampled


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def table(chain: Chain) -> Table:
    from rich.table import Table

    table = Table(*COLUMNS, title=f"{chain.final.ref}: evaluations along its chain")
    for row in rows(chain):
        table.add_row(*cells(row))
    return table


# -- report.png and report.html ---------------------------------------------------------------


def write_report(chain: Chain, out_dir: Path) -> tuple[Path, Path]:
    """Write ``report.png`` and ``report.html`` (the PNG embedded) in ``out_dir``; each file
    appears whole or not at all. Returns their paths."""
    out_dir = Path(out_dir)
    png = render_png(chain)
    png_path, html_path = out_dir / PNG_FILE, out_dir / HTML_FILE
    atomic.write_bytes(png_path, png)
    atomic.write_text(html_path, render_html(chain, png))
    return png_path, html_path


def render_png(chain: Chain) -> bytes:
    """The report figure: pretrain loss, SFT loss and RL reward above, evaluations below."""
    # A Figure on an Agg canvas rather than pyplot: no process-wide backend switch or figure
    # registry, so a caller's (or a notebook's) matplotlib state is left alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    # Two subfigures, each laid out on its own: the long model labels of the evaluation
    # panels would otherwise narrow the curve panels above them too.
    curves, evals = fig.subfigures(2, 1)
    for ax, stage in zip(curves.subplots(1, 3), ("pretrain", "sft", "rl")):
        _curve_panel(ax, stage, chain.of_stage(stage))
    loss_ax, share_ax = evals.subplots(1, 2, sharey=True)
    _eval_panels(loss_ax, share_ax, rows(chain))
    fig.suptitle(chain.final.ref, fontsize=14, fontweight="bold")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _curve_panel(ax, stage: str, models: list[ChainModel]) -> None:
    ax.set_title(STAGE_TITLES[stage], loc="left", fontsize=11)
    if not models:
        _empty(ax, f"no {stage} model in this chain")
        return
    series = (("reward", "mean reward"),) if stage == "rl" else (("loss", "train loss"), ("val_loss", "validation loss"))
    drawn = 0
    for model in models:
        records = _by_step(model.metrics_path())
        keys = list(series)
        if stage == "rl":  # one line per reward function, named after it
            names = sorted({k for r in records for k in r if k.startswith("reward/")})
            keys += [(k, k.split("/", 1)[1]) for k in names]
        prefix = f"{model.ref} " if len(models) > 1 else ""
        for key, label in keys:
            points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
            if not points:
                continue
            drawn += 1
            if key == "loss" and len(points) >= 50:
                # Per-step loss of a small batch is noise around the trend: draw it faint and
                # the trend (a running mean) over it.
                window = max(5, len(points) // 25)
                line, = ax.plot(*zip(*points), "-", linewidth=0.8, alpha=0.35, label=prefix + label)
                ax.plot(*zip(*_running_mean(points, window)), "-", linewidth=1.8, color=line.get_color(),
                        label=f"{prefix}{label}, mean of {window} steps")
                continue
            sparse = key == "val_loss" or len(points) < 10
            ax.plot(*zip(*points), "o-" if sparse else "-", markersize=4, linewidth=2 if key == "reward" else 1.2,
                    label=prefix + label)
    if not drawn:
        _empty(ax, "no metrics recorded for " + ", ".join(m.ref for m in models))
        return
    if len(models) == 1:
        ax.set_title(models[0].ref, loc="right", fontsize=8, color="0.35")
    ax.set_xlabel("step")
    ax.set_ylabel("reward" if stage == "rl" else "loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", framealpha=0.85)


def _running_mean(points: list[tuple[float, float]], window: int) -> list[tuple[float, float]]:
    values = [v for _, v in points]
    return [(points[i][0], sum(values[i + 1 - window: i + 1]) / window) for i in range(window - 1, len(points))]


def _by_step(path: Path | None) -> list[dict[str, Any]]:
    # A run that logged a step twice (a final record after the last step's) keeps the last one.
    if path is None:
        return []
    return sorted({r["step"]: r for r in read_metrics(path) if "step" in r}.values(), key=lambda r: r["step"])


def _eval_panels(loss_ax, share_ax, table_rows: list[dict[str, Any]]) -> None:
    labels = [row["model"] for row in table_rows]
    places = list(range(len(labels)))
    losses = [row["loss"] for row in table_rows]
    loss_ax.set_title("held-out loss (lower is better)", fontsize=11)
    if any(v is not None for v in losses):
        bars = loss_ax.barh(places, [v or 0 for v in losses], height=0.6, color="tab:blue")
        for bar, value in zip(bars, losses):
            _bar_label(loss_ax, bar, "no loss eval" if value is None else f"{value:.3f}")
        loss_ax.set_xlim(0, max(v for v in losses if v is not None) * 1.2)
        loss_ax.set_xlabel("mean per-token cross-entropy (nats)")
    else:
        _empty(loss_ax, "no loss evaluation of these models")
    loss_ax.grid(axis="x", alpha=0.3)

    share_ax.set_title("generation (share of prompts, higher is better)", fontsize=11)
    measures = [(key, label, color) for key, label, color in
                (("accuracy", "accuracy (greedy)", "tab:green"),
                 ("sampled_accuracy", "accuracy (sampled)", "tab:cyan"), ("pass_at_k", "pass@k", "tab:olive"),
                 ("format_rate", "ends turn", "tab:orange"))
                if any(row.get(key) is not None for row in table_rows)]
    if measures:
        height = 0.8 / len(measures)
        for index, (key, label, color) in enumerate(measures):
            offset = (index - (len(measures) - 1) / 2) * height
            values = [row[key] for row in table_rows]
            bars = share_ax.barh([p + offset for p in places], [100 * (v or 0) for v in values], height=height * 0.9,
                                 color=color, label=label)
            for bar, value in zip(bars, values):
                if value is not None:
                    _bar_label(share_ax, bar, f"{value:.1%}")
        share_ax.set_xlim(0, 118)  # room for a label beside a 100% bar
        share_ax.set_xticks(range(0, 101, 25))
        share_ax.set_xlabel("%")
        # Below the axes: inside, it would cover the bars of whichever model is at its corner.
        share_ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=len(measures), frameon=False)
    else:
        _empty(share_ax, "no accuracy evaluation of these models")
    share_ax.tick_params(axis="y", labelleft=False)
    share_ax.grid(axis="x", alpha=0.3)
    # Last: the two panels share their y axis, and an empty one clears its ticks.
    loss_ax.set_yticks(places, labels, fontsize=9)
    if not loss_ax.yaxis_inverted():
        loss_ax.invert_yaxis()  # root on top, like the table


def _bar_label(ax, bar, text: str) -> None:
    ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, " " + text, va="center", fontsize=8)


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", fontsize=10, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def render_html(chain: Chain, png: bytes) -> str:
    """A page that needs no other file: the figure inline, the table, the chain's records."""
    e = html.escape
    image = base64.b64encode(png).decode("ascii")
    head = "".join(f"<th>{e(c)}</th>" for c in COLUMNS)
    body = "\n".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells(row)) + "</tr>" for row in rows(chain))
    lineage = "\n".join(_lineage_item(model) for model in chain.models)
    title = e(chain.final.ref)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.8em; text-align: left; }}
th {{ background: #f3f3f3; }}
img {{ max-width: 100%; }}
code {{ font-size: 0.9em; }}
li {{ margin: 0.4em 0; }}
</style>
</head>
<body>
<h1>{title}</h1>
<img alt="training curves and evaluations of {title}" src="data:image/png;base64,{image}">
<h2>Evaluations</h2>
<table>
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<h2>Lineage (root first)</h2>
<ol>
{lineage}
</ol>
</body>
</html>
"""


def _lineage_item(model: ChainModel) -> str:
    e = html.escape
    record = model.record
    lines = [f"<code>{e(record.uri)}</code> ({e(model.stage)}, step {e(str(record.fields.get('step', '-')))}): "
             f"<code>{e(record.path)}</code>"]
    if record.fields.get("training_data"):
        lines.append(f"trained on <code>{e(str(record.fields['training_data']))}</code>")
    metrics = model.metrics_path()
    if metrics is not None:
        lines.append(f"metrics <code>{e(str(metrics))}</code>")
    evals = "".join(
        f"<li><code>{e(ev.uri)}</code> {e(str(ev.fields.get('evaluation')))} on "
        f"{e(str(ev.fields.get('split')))} ({e(str(ev.fields.get('weights', 'trained')))} weights): "
        f"<code>{e(ev.path)}</code></li>"
        for ev in sorted(model.evals, key=lambda ev: ev.uri))
    return "<li>" + "<br>".join(lines) + (f"<ul>{evals}</ul>" if evals else "") + "</li>"
