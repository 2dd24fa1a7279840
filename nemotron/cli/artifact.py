"""``nemotron artifact ...``: list, show, lineage, alias, verify, diff, reproduce and gc registry
entries; report a model's chain."""

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

    from nemo_runspec.errors import CorruptRecordError, NemotronError

    registry = _tracking(root).registry
    table = Table("name", "type", "latest", "aliases", title=f"registry {registry.root}")
    problems = []
    for name in registry.names():
        try:
            latest = registry.latest_version(name)
            for version in range(1, latest + 1):  # a garbage record anywhere is worth saying
                registry.read_version(name, version)
            aliases = ", ".join(f"{a}=v{v}" for a, v in registry.aliases(name).items())
            table.add_row(name, registry.bound_type(name), f"v{latest}", aliases)
        except NemotronError as err:
            problems.append(str(err))
            table.add_row(name, "[red]corrupt[/red]", "?", "")
    _console().print(table)
    if problems:
        for problem in problems[1:]:
            typer.echo(f"error: {problem}", err=True)
        raise CorruptRecordError(problems[0])


@app.command()
def show(ref: str = typer.Argument(..., help="NAME[:VERSION], e.g. my-data:v3"), root: Path | None = _ROOT) -> None:
    """One version: typed fields, inputs, aliases, producer and metadata."""
    from rich.table import Table

    tracking = _tracking(root)
    record = tracking.resolve(ref, deleted_ok=True)
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
        ("contents", _contents_text(record)),
        *([("deleted", f"[red]data deleted by gc on {record.deleted.at.isoformat()} "
                       f"({_size(record.deleted.bytes_freed)} freed)[/red]")] if record.deleted else []),
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
def verify(
    ref: str | None = typer.Argument(None, help="NAME (every version) or NAME:VERSION; default: the whole registry."),
    content: bool = typer.Option(False, "--content", help="Also check every file of each version against the "
                                                          "manifest recorded when it was published."),
    root: Path | None = _ROOT,
) -> None:
    """Check that versions are complete, gap-free and well-formed; with --content, that their files are unchanged."""
    from nemo_runspec import integrity
    from nemo_runspec.errors import CorruptRecordError

    tracking = _tracking(root)
    registry = tracking.registry
    records = _records_to_verify(tracking, ref)
    problems = registry.verify(None if ref is None else sorted({r.name for r in records}))
    checked = 0
    for record in records if content else ():
        if record.deleted is not None:
            typer.echo(f"{record.ref}: data deleted by gc, not checked")
        elif record.contents is None:
            typer.echo(f"{record.ref}: no content manifest (published before digests), not checked")
        else:
            found = integrity.differences(record)
            problems += [f"{record.ref}: {difference}" for difference in found]
            checked += 1
            if not found:
                typer.echo(f"{record.ref}: {len(record.contents.files)} files, {_size(record.contents.total_bytes)}: unchanged")
    if problems:
        for problem in problems:
            typer.echo(problem, err=True)
        where = ref or f"registry {registry.root}"
        raise CorruptRecordError(f"{where}: {len(problems)} problem(s)", hint="see the lines above")
    what = f"{_count(len({r.name for r in records}), 'name')}, {_count(len(records), 'version')}"
    what += f", {checked} checked file by file" if content else ""
    typer.echo(f"{ref or 'registry ' + str(registry.root)}: {what}, all valid")


@app.command()
def diff(
    a: str = typer.Argument(..., help="NAME:VERSION"),
    b: str = typer.Argument(..., help="NAME:VERSION (another name is fine: two sweep jobs' models)"),
    root: Path | None = _ROOT,
) -> None:
    """What differs between two versions: typed fields, inputs, resolved config and contents."""
    from rich.table import Table

    from nemo_runspec.record_diff import diff_records

    tracking = _tracking(root)
    left, right = tracking.resolve(a, deleted_ok=True), tracking.resolve(b, deleted_ok=True)
    rows = diff_records(left, right)
    if not rows:
        typer.echo(f"{left.ref} and {right.ref} do not differ")
        return
    table = Table("", left.ref, right.ref, title=f"{len(rows)} differences")
    for row in rows:
        table.add_row(*row)
    _console().print(table)


@app.command()
def reproduce(
    ref: str = typer.Argument(..., help="NAME:VERSION of a data prep's, import's, training's or evaluation's output"),
    log: bool = typer.Option(False, "--log", help="Run the step for real and log what it makes (rebuilds a version "
                                                  "whose data gc deleted); by default nothing is logged."),
    root: Path | None = _ROOT,
) -> None:
    """Re-run the step that made a version, from its record (config, pinned inputs), and compare the files."""
    from nemo_runspec.errors import NemotronError
    from nemotron.stages.reproduce import reproduce as rebuild

    outcome = rebuild(_tracking(root), ref, log=log)
    for warning in outcome.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if outcome.note:
        typer.echo(outcome.note)
        return
    original, rebuilt = outcome.original, outcome.rebuilt
    if outcome.identical:
        logged = f" (logged {rebuilt.ref})" if log else ""
        relocated = (f"; {', '.join(outcome.relocated)}: equal once the paths naming the rebuild's directory "
                     f"read as the original's" if outcome.relocated else "")
        typer.echo(f"{original.ref}: identical ({len(original.contents.files)} files, "
                   f"{_size(original.contents.total_bytes)}, root {original.contents.root[:16]}{relocated}){logged}")
        return
    for difference in outcome.differences:
        typer.echo(f"{original.ref}: {difference}", err=True)
    raise NemotronError(f"{original.ref} did not reproduce: {len(outcome.differences)} file(s) differ",
                        hint="the lines above name them; the warnings (if any) say what changed since")


@app.command()
def gc(
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be deleted and how many bytes; delete nothing."),
    keep_last: int = typer.Option(1, "--keep-last", min=1, metavar="N", help="Keep the last N versions of every name."),
    root: Path | None = _ROOT,
) -> None:
    """Delete the data of versions nothing refers to (not latest, no alias, no kept version's input); keep their records."""
    from rich.table import Table

    from nemo_runspec.registry import gc as collection

    registry = _tracking(root).registry
    outcome = (collection.plan if dry_run else collection.collect)(registry, keep_last)
    verb = "would delete" if dry_run else "deleted"
    count = _count(len(outcome.delete), "version")
    table = Table("version", "type", "directory", "bytes", title=f"{verb}: {count}, {_size(outcome.bytes)}")
    for candidate in outcome.delete:
        table.add_row(candidate.record.ref, candidate.record.type, str(candidate.directory), _size(candidate.size))
    _console().print(table)
    for record, why in outcome.left:
        typer.echo(f"left {record.ref}: unreferenced, but {why}")
    typer.echo(f"{verb} {_size(outcome.bytes)} in {count}; kept {outcome.kept}")


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


def _records_to_verify(tracking, ref: str | None):
    from nemo_runspec.errors import NemotronError

    registry = tracking.registry
    if ref is not None and ":" in ref:
        return [tracking.resolve(ref, deleted_ok=True)]  # a version W&B answers for is checked too
    names = [ref] if ref is not None else registry.names()
    records = []
    for name in names:
        if ref is not None and registry.bound_type(name) is None:
            return [tracking.resolve(name, deleted_ok=True)]
        for version in range(1, registry.latest_version(name) + 1):
            try:
                records.append(registry.read_version(name, version))
            except NemotronError:
                continue  # bookkeeping (registry.verify) reports it
    return records


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _contents_text(record) -> str:
    if record.contents is None:
        return "-"
    return (f"{len(record.contents.files)} files, {_size(record.contents.total_bytes)}, "
            f"{record.contents.algorithm} root {record.contents.root[:16]}")


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def _compact(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)
