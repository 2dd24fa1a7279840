"""``nemotron demo``: log two artifacts, resolve one through ``${art:}``, print the lineage."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    workdir: Path = typer.Option(Path("runs/demo"), help="Where the demo writes its data."),
    root: Path | None = typer.Option(None, "--root", help="Registry root (default: ./artifacts)."),
) -> None:
    """Log a corpus and a vocabulary derived from it, then print the vocabulary's lineage."""
    from omegaconf import OmegaConf
    from rich.console import Console

    from nemo_runspec import lineage
    from nemo_runspec.artifacts import setup_artifact_tracking
    from nemotron.stages.demo import count_vocabulary, log_corpus

    console = Console()
    tracking = setup_artifact_tracking({"root": str(root)} if root else None)
    corpus = log_corpus(workdir, tracking)
    console.print(f"logged [bold]{corpus.name}:v{corpus.version}[/bold] ({corpus.num_documents} documents)")

    config = OmegaConf.create(
        {
            "run": {"data": "demo-corpus:latest"},
            "vocab": {"input": "${art:data,path}/corpus.jsonl", "output": str(workdir / "vocab")},
        }
    )
    console.print(f"resolved ${{art:data,path}} -> {OmegaConf.to_container(config, resolve=True)['vocab']['input']}")
    vocab = count_vocabulary(config, tracking)
    console.print(f"logged [bold]{vocab.name}:v{vocab.version}[/bold] ({vocab.vocab_size} words) in {tracking.registry.root}")
    console.print(lineage.to_rich_tree(lineage.ancestors(tracking, f"{vocab.name}:v{vocab.version}")))
