"""``nemotron <family> ...``: run a family's recipes (``data prep pretrain``, ``pretrain``).

Every stage command takes Hydra overrides verbatim after its options, ``-m`` for sweeps and
``--cfg job`` / ``--dry-run`` to print the resolved config without running anything.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from nemotron.stages.steps import STEPS

_EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}
_MULTIRUN = typer.Option(False, "-m", "--multirun", help="Run one job per combination of swept values (a=1,2).")
_CFG = typer.Option(None, "--cfg", help="'job': print the resolved config and exit.")
_DRY_RUN = typer.Option(False, "--dry-run", help="Print the resolved config of every job and exit.")
_RUN = typer.Option(None, "--run", metavar="PROFILE", help="Run under an env.toml profile (SLURM: submit, stream the log, wait).")
_BATCH = typer.Option(None, "--batch", metavar="PROFILE", help="Submit under an env.toml profile and print the job id.")
_VERIFY_INPUTS = typer.Option(False, "--verify-inputs", help="Digest every file of each input artifact before starting "
                              "(default: sizes, and the files whose size or mtime moved).")
_VERIFY_OVERRIDE = "artifacts.verify_inputs=true"


def family_app(family: str) -> typer.Typer:
    app = typer.Typer(help=f"The {family} recipes: data prep and training stages.", no_args_is_help=True)
    data = typer.Typer(help="Prepare or import a stage's data.", no_args_is_help=True)
    prep = typer.Typer(help="Raw data -> a typed data artifact.", no_args_is_help=True)
    app.add_typer(data, name="data")
    data.add_typer(prep, name="prep")

    @prep.command("pretrain", context_settings=_EXTRA)
    def prep_pretrain(
        ctx: typer.Context,
        multirun: bool = _MULTIRUN,
        cfg: str | None = _CFG,
        dry_run: bool = _DRY_RUN,
        run: str | None = _RUN,
        batch: str | None = _BATCH,
        num_shards: int | None = typer.Option(None, "--num-shards", help="Split the work into this many jobs."),
        shard_index: int | None = typer.Option(None, "--shard-index", help="This job's slice (default: SLURM_ARRAY_TASK_ID)."),
        finalize: bool = typer.Option(False, "--finalize", help="Only write blend.json and log the artifact."),
    ) -> None:
        """Raw text -> Megatron bin/idx shards + blend.json (PretrainBlendsArtifact).

        With --num-shards N and a SLURM profile: an array of N slice jobs, then a finalize job."""
        from nemo_runspec.hydra_app import compose
        from nemotron.recipes import recipe
        from nemotron.stages.slurm import placement, submit_slices
        from nemotron.stages.steps import check_groups

        whole = num_shards and shard_index is None and not (finalize or multirun or cfg or dry_run)
        composed = compose(recipe(family, "data_prep_pretrain"), list(ctx.args)) if whole else None
        if whole and (where := placement(run, batch, composed)):
            check_groups("data_prep_pretrain", composed)
            jobs = submit_slices(where, family, num_shards, list(ctx.args), _debug(ctx))
            if not where.wait:
                typer.echo(" ".join(job.job_id for job in jobs))
            return
        run_recipe(ctx, family, "data_prep_pretrain", multirun=multirun, cfg=cfg, dry_run=dry_run, run=run, batch=batch,
                   extra=_slice_overrides(num_shards, shard_index, finalize))

    for step in (s for s in STEPS if s.recipe != "data_prep_pretrain"):  # that one has options of its own (above)
        stage(prep if step.command[0] == "data" else app, step.command[-1], family, step.recipe, step.doc)

    @app.command("pipe", context_settings=_EXTRA)
    def pipe(
        ctx: typer.Context,
        run: str | None = _RUN,
        batch: str | None = _BATCH,
        to: str | None = typer.Option(None, "--to", metavar="STEP", help="Stop after this step (e.g. pretrain)."),
        verify_inputs: bool = _VERIFY_INPUTS,
    ) -> None:
        """The whole tiny-to-full pipeline: 3 data preps, 3 trainings and an evaluation after each,
        then the final lineage, a table of each model's evaluations and the report picture.

        Overrides apply to every step, or to one with its name as a prefix (pretrain:train.steps=20,
        eval_sft:eval.samples=0). With a SLURM profile every step is its own job, started when the
        one before completed."""
        from rich.console import Console

        from nemo_runspec import lineage
        from nemotron.stages.pipe import pipe_here_or_on_slurm

        overrides = [*ctx.args, *([_VERIFY_OVERRIDE] if verify_inputs else [])]
        outcome = pipe_here_or_on_slurm(family, overrides, run=run, batch=batch, until=to, debug=_debug(ctx))
        if outcome.final is None:  # --batch: the job ids, for scripts
            typer.echo(" ".join(job.job_id for job in outcome.jobs))
            return
        console = Console()
        console.print(lineage.to_rich_tree(lineage.ancestors(outcome.tracking, outcome.final)))
        final = outcome.tracking.resolve(outcome.final)
        if final.type == "ModelArtifact":
            from nemotron.stages import report

            chain = report.collect(outcome.tracking, outcome.final)
            png, page = report.write_report(chain, Path("reports") / f"{final.name}-v{final.version}")
            console.print(report.table(chain))
            typer.echo(f"report: {png}\npage: {page}")

    model_app = typer.Typer(help="Model sizes and checkpoints.", no_args_is_help=True)
    app.add_typer(model_app, name="model")

    @model_app.command("params", context_settings=_EXTRA)
    def params(
        ctx: typer.Context,
        vocab_size: int | None = typer.Option(None, "--vocab-size", help="Default: model.tokenizer_vocab_size, else the tiny tokenizer's."),
    ) -> None:
        """Parameter count of the pretrain recipe's model (switch with model=SIZE), without building it."""
        from omegaconf import OmegaConf
        from rich.console import Console
        from rich.table import Table

        from nemo_runspec.hydra_app import compose
        from nemotron.recipes import recipe
        from nemotron.train.param_count import count_parameters, format_count

        model = OmegaConf.to_container(compose(recipe(family, "pretrain"), list(ctx.args)).model, resolve=True)
        vocab = vocab_size or model.get("tokenizer_vocab_size") or _tiny_vocab_size()
        count = count_parameters(model, vocab)
        table = Table("component", "parameters", title=f"model {model.get('name')} (vocabulary {vocab})")
        for component, number in count.breakdown.items():
            if number:
                table.add_row(component, f"{number:,}")
        table.add_row("[bold]total", f"[bold]{count.total:,} ({format_count(count.total)})")
        if count.active != count.total:
            table.add_row("[bold]active per token", f"[bold]{count.active:,} ({format_count(count.active)})")
        Console().print(table)

    @model_app.command("export")
    def export(
        format: str = typer.Argument(..., metavar="FORMAT", help="Target format: hf (Hugging Face transformers: LlamaForCausalLM, NemotronHForCausalLM for hybrid models)."),
        source: str = typer.Argument(..., metavar="NAME[:VER]", help="A Megatron ModelArtifact from pretrain or sft."),
        out: str = typer.Argument(..., metavar="OUT", help="A new or empty directory; never overwritten."),
        name: str | None = typer.Option(None, "--name", help="Artifact name to log (default: <source-name>-hf)."),
        tokenizer: str | None = typer.Option(None, "--tokenizer", help="Tokenizer directory or tokenizer.json, when the source records none."),
        root: str | None = typer.Option(None, "--root", help="Registry root (default: NEMOTRON_ARTIFACTS_ROOT, env.toml, ./artifacts)."),
        verify_inputs: bool = _VERIFY_INPUTS,
    ) -> None:
        """Convert a Megatron checkpoint to another format (ModelArtifact, format=hf, parent = the source)."""
        from nemo_runspec.errors import ConfigError
        from nemotron.stages.export import FORMATS, export_hf

        if format not in FORMATS:
            raise ConfigError(f"unknown export format {format!r}", hint=f"supported: {', '.join(FORMATS)}")
        export_hf(source, out, name=name, tokenizer=tokenizer, root=root, verify_inputs=verify_inputs)

    @model_app.command("import")
    def model_import(
        stage: str = typer.Argument(..., metavar="STAGE", help="pretrain, sft or rl: the stage the checkpoint belongs to."),
        path: str = typer.Argument(..., metavar="PATH", help="A Megatron distributed checkpoint (our iter_N, a run's "
                                   "checkpoints/, Megatron-LM's iter_0000050) or a Hugging Face directory."),
        step: int | None = typer.Option(None, "--step", min=0, help="The training step (default: what the checkpoint records)."),
        name: str | None = typer.Option(None, "--name", help="Artifact name to log (default: <family>-<stage>-model-imported)."),
        tokenizer: str | None = typer.Option(None, "--tokenizer", help="Tokenizer directory or tokenizer.json the model was trained with."),
        root: str | None = typer.Option(None, "--root", help="Registry root (default: NEMOTRON_ARTIFACTS_ROOT, env.toml, ./artifacts)."),
    ) -> None:
        """Log a checkpoint made elsewhere as a ModelArtifact (format megatron or hf), after checking its layout."""
        from nemotron.stages.imports import import_model

        import_model(family, stage, path, step=step, name=name, tokenizer=tokenizer, root=root)

    @data.command("import")
    def data_import(
        stage: str = typer.Argument(..., metavar="STAGE", help="pretrain (blend.json), sft (packed Parquet) or rl (split JSONL)."),
        path: str = typer.Argument(..., metavar="PATH", help="A blend.json (or its folder), or the data's folder."),
        name: str | None = typer.Option(None, "--name", help="Artifact name to log (default: <family>-<stage>-data-imported)."),
        tokenizer: str | None = typer.Option(None, "--tokenizer", help="Tokenizer directory or tokenizer.json of the token ids (pretrain, sft: required)."),
        chat_template: str | None = typer.Option(None, "--chat-template", help="sft: the .jinja template the data was rendered with."),
        root: str | None = typer.Option(None, "--root", help="Registry root (default: NEMOTRON_ARTIFACTS_ROOT, env.toml, ./artifacts)."),
    ) -> None:
        """Log data made elsewhere as the stage's data artifact, after checking its layout and contents."""
        from nemotron.stages.imports import import_data

        import_data(family, stage, path, name=name, tokenizer=tokenizer, chat_template=chat_template, root=root)

    return app


def stage(parent: typer.Typer, command: str, family: str, recipe_name: str, doc: str) -> None:
    """Add a stage command: Hydra overrides, -m sweeps, dry runs and --run/--batch PROFILE."""
    def run_stage(ctx: typer.Context, multirun: bool = _MULTIRUN, cfg: str | None = _CFG, dry_run: bool = _DRY_RUN,
                  run: str | None = _RUN, batch: str | None = _BATCH, verify_inputs: bool = _VERIFY_INPUTS) -> None:
        run_recipe(ctx, family, recipe_name, multirun=multirun, cfg=cfg, dry_run=dry_run, run=run, batch=batch,
                   extra=[_VERIFY_OVERRIDE] if verify_inputs else [])

    run_stage.__doc__ = doc
    parent.command(command, context_settings=_EXTRA)(run_stage)


def _tiny_vocab_size() -> int:
    import json

    from nemotron.recipes import ASSETS_DIR

    tokenizer = json.loads((ASSETS_DIR / "tokenizers" / "tiny-bpe" / "tokenizer.json").read_text())
    return len(tokenizer["model"]["vocab"]) + sum(1 for t in tokenizer["added_tokens"] if t["content"] not in tokenizer["model"]["vocab"])


def run_recipe(ctx: typer.Context, family: str, recipe_name: str, *, multirun: bool, cfg: str | None,
               dry_run: bool, run: str | None = None, batch: str | None = None, extra: list[str] = ()) -> None:
    from nemo_runspec import hydra_app
    from nemo_runspec.errors import ConfigError
    from nemotron.recipes import recipe
    from nemotron.stages.slurm import placement, submit_recipe
    from nemotron.stages.steps import step_named

    source = recipe(family, recipe_name)
    overrides = [*ctx.args, *extra]
    if cfg is not None and cfg != "job":
        raise ConfigError(f"--cfg {cfg} is not supported", hint="use --cfg job (or --dry-run)")
    if dry_run or cfg == "job":
        texts, notes = hydra_app.dry_run(source, overrides)
        for text in texts:
            typer.echo(text)
        for note in notes:
            typer.echo(f"note: {note}", err=True)
        return
    composed = hydra_app.compose_jobs(source, overrides)
    if (where := placement(run, batch, composed[0])) is not None:
        return submit_recipe(where, family, recipe_name, overrides, composed, multirun, _debug(ctx))
    hydra_app.run(source, overrides, step_named(recipe_name).function(), multirun=multirun, debug=_debug(ctx),
                  composed=composed)


def _debug(ctx: typer.Context) -> bool:
    return bool((ctx.find_root().obj or {}).get("debug"))


def _slice_overrides(num_shards: int | None, shard_index: int | None, finalize: bool) -> list[str]:
    from nemo_runspec.errors import ConfigError

    if shard_index is None and num_shards is not None:
        array_index = os.environ.get("SLURM_ARRAY_TASK_ID")
        if array_index is None and not finalize:
            raise ConfigError("--num-shards needs --shard-index (or SLURM_ARRAY_TASK_ID)")
        shard_index = int(array_index or 0)
    overrides = []
    if num_shards is not None:
        overrides += [f"data_prep.slice.count={num_shards}", f"data_prep.slice.index={shard_index}"]
    elif shard_index is not None:
        raise ConfigError("--shard-index needs --num-shards")
    if finalize:
        overrides.append("data_prep.slice.finalize=true")
    return overrides
