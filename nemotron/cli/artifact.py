"""``nemotron artifact ...``: list, show, lineage, alias and verify registry entries; report a model's chain."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer

app = typer.Typer(help="Inspect and manage the artifact registry.", no_args_is_help=True)

_ROOT = typer.Option(None, "--root", help="Registry root (default: NEMOTRON_ARTIFACTS_ROOT, env.toml, ./artifacts).")


class LineageFormat(str, Enum):
    tree = "tree"
    mermaid = "mermaid"
    json = "json"


def _tracking(root: Path | None):
    from nemo_runspec.artifacts import setup_artifact_tracking

    return setup_artifact_tracking({"root": str(root)} if root else None)


def _console():
    from rich.console import Console

    return Console()


@app.command("list")
def list_(root: Path | None = _ROOT) -> None:
    """Every artifact name with its type, latest version and aliases."""
    from rich.table import Table

    registry = _tracking(root).registry
    table = Table("name", "type", "latest", "aliases", title=f"registry {registry.root}")
    for name in registry.names():
        aliases = ", ".join(f"{a}=v{v}" for a, v in registry.aliases(name).items())
        table.add_row(name, registry.bound_type(name), f"v{registry.latest_version(name)}", aliases)
    _console().print(table)


@app.command()
def show(ref: str = typer.Argument(..., help="NAME[:VERSION], e.g. my-data:v3"), root: Path | None = _ROOT) -> None:
    """One version: typed fields, inputs, aliases, producer and metadata."""
    from rich.table import Table

    tracking = _tracking(root)
    record = tracking.resolve(ref)
    aliases = [a for a, v in tracking.registry.aliases(record.name).items() if v == record.version]
    if record.version == tracking.registry.latest_version(record.name):
        aliases.insert(0, "latest")
    table = Table(show_header=False, title=f"{record.uri}")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in [
        ("type", record.type),
        ("path", record.path),
        ("aliases", ", ".join(aliases) or "-"),
        ("created_at", record.created_at.isoformat()),
        ("producer", _compact(record.producer)),
        ("code_version", _compact(record.code_version)),
        ("inputs", "\n".join(record.inputs) or "-"),
        *((f"field {k}", _compact(v)) for k, v in record.fields.items()),
        *((f"metadata {k}", _compact(v)) for k, v in record.metadata.items()),
    ]:
        table.add_row(key, value)
    _console().print(table)


@app.command()
def lineage(
    ref: str = typer.Argument(..., help="NAME[:VERSION]"),
    descendants: bool = typer.Option(False, "--descendants", help="Show what was made from it instead."),
    format: LineageFormat = typer.Option(LineageFormat.tree, "--format", help="tree, mermaid or json."),
    root: Path | None = _ROOT,
) -> None:
    """The ancestors (default) or descendants of a version."""
    from nemo_runspec import lineage as graph

    direction = "descendants" if descendants else "ancestors"
    tracking = _tracking(root)
    node = graph.descendants(tracking, ref) if descendants else graph.ancestors(tracking, ref)
    if format is LineageFormat.mermaid:
        from nemotron.kit.stages import stage_of

        typer.echo(graph.to_mermaid(node, direction, group=stage_of))
    elif format is LineageFormat.json:
        typer.echo(json.dumps(graph.to_json(node, direction), indent=2))
    else:
        _console().print(graph.to_rich_tree(node, direction))


@app.command()
def alias(
    ref: str = typer.Argument(..., help="NAME:VERSION the alias should point at"),
    alias: str = typer.Argument(..., help="alias name, e.g. production"),
    root: Path | None = _ROOT,
) -> None:
    """Point ALIAS at a version (moves it if it exists)."""
    record = _tracking(root).set_alias(ref, alias)
    typer.echo(f"{record.name}:{alias} -> v{record.version}")


@app.command()
def verify(root: Path | None = _ROOT) -> None:
    """Check that every name's versions are complete, gap-free and well-formed."""
    from nemo_runspec.errors import CorruptRecordError

    registry = _tracking(root).registry
    problems = registry.verify()
    if problems:
        for problem in problems:
            typer.echo(problem, err=True)
        raise CorruptRecordError(f"registry {registry.root} has {len(problems)} problem(s)", hint="see the lines above")
    count = sum(registry.latest_version(n) for n in registry.names())
    typer.echo(f"registry {registry.root}: {len(registry.names())} names, {count} versions, all valid")


@app.command()
def report(
    ref: str = typer.Argument(..., help="NAME[:VERSION] of a ModelArtifact, e.g. nano3-rl-model-tiny:latest"),
    out: Path | None = typer.Option(None, "--out", help="Directory for report.png and report.html "
                                                        "(default: reports/NAME-vVERSION)."),
    root: Path | None = _ROOT,
) -> None:
    """A model and its parents: loss and reward curves and every evaluation, as a table, a PNG and a page."""
    from nemotron.stages import report as reporting

    chain = reporting.collect(_tracking(root), ref)
    final = chain.final.record
    png, page = reporting.write_report(chain, out or Path("reports") / f"{final.name}-v{final.version}")
    _console().print(reporting.table(chain))
    typer.echo(f"report: {png}")
    typer.echo(f"page: {page}")


def _compact(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)
