"""The ``nemotron`` command: parses, dispatches, and turns errors into one line plus a hint.

Heavy libraries (torch, megatron, transformers, wandb) are never imported here; subcommands
import what they need when they run, so ``nemotron --help`` stays fast.
"""

from __future__ import annotations

import sys

import typer

from nemotron.cli import artifact, demo, jobs
from nemotron.cli.family import family_app
from nemotron.recipes import families

app = typer.Typer(
    name="nemotron",
    help="Train LLMs through pretrain -> SFT -> RL with typed, versioned artifacts and exact lineage.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(artifact.app, name="artifact")
app.add_typer(jobs.app, name="jobs")
app.command("demo")(demo.demo)
for _family in families():
    app.add_typer(family_app(_family), name=_family)

_state = {"debug": False}


@app.callback()
def _options(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
) -> None:
    _state["debug"] = debug
    ctx.obj = {"debug": debug}
    from nemo_runspec.quiet import quiet_third_party

    quiet_third_party(debug)


def main() -> None:
    try:
        app()
    except SystemExit:
        raise
    except BaseException as err:  # noqa: BLE001 - the one place errors become exit codes
        if _state["debug"] or isinstance(err, KeyboardInterrupt):
            raise
        from nemo_runspec.errors import report_error

        sys.exit(report_error(err))


if __name__ == "__main__":
    main()
