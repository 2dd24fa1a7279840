"""The ``nemotron`` command: parses, dispatches, and turns errors into one line plus a hint.

Heavy libraries (torch, megatron, transformers, wandb) are never imported here; subcommands
import what they need when they run, so ``nemotron --help`` stays fast.
"""

from __future__ import annotations

import sys

import typer

from nemotron.cli import artifact, demo

app = typer.Typer(
    name="nemotron",
    help="Train LLMs through pretrain -> SFT -> RL with typed, versioned artifacts and exact lineage.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(artifact.app, name="artifact")
app.command("demo")(demo.demo)

_state = {"debug": False}


@app.callback()
def _options(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
) -> None:
    _state["debug"] = debug


def main() -> None:
    try:
        app()
    except SystemExit:
        raise
    except BaseException as err:  # noqa: BLE001 - the one place errors become exit codes
        if _state["debug"] or isinstance(err, KeyboardInterrupt):
            raise
        sys.exit(_report(err))


def _report(err: BaseException) -> int:
    cause = _user_error(err)
    if cause is not None:
        message, hint = str(cause), cause.hint
    else:
        message, hint = f"{type(err).__name__}: {err}", None
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    print(f"hint: {hint or 'run again with --debug for the traceback'}", file=sys.stderr)
    return 1


def _user_error(err: BaseException):
    """The NemotronError behind ``err`` (OmegaConf wraps errors raised inside resolvers)."""
    from nemo_runspec.errors import NemotronError

    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, NemotronError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


if __name__ == "__main__":
    main()
