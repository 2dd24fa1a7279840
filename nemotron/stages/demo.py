"""The artifact demo: log a corpus, derive a vocabulary from it through a config that reads
the corpus artifact with ``${art:...}``, and show the lineage that connects them.

The corpus is the Gettysburg Address (public domain), one paragraph per document.
"""

from __future__ import annotations

import collections
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import Field

from nemo_runspec.artifacts import Artifact, ArtifactTracking, log_artifact

NonNegativeInt = Annotated[int, Field(ge=0)]


class TextCorpusArtifact(Artifact):
    """Raw text documents, one JSON object per line with a ``text`` field."""

    num_documents: NonNegativeInt
    num_bytes: NonNegativeInt
    sha256: str


class VocabularyArtifact(Artifact):
    """Word counts over a corpus artifact."""

    vocab_size: NonNegativeInt
    num_words: NonNegativeInt
    corpus: str = Field(description="art:// reference of the corpus counted")

    def get_input_uris(self) -> list[str]:
        return [self.corpus]


def log_corpus(workdir: Path, tracking: ArtifactTracking) -> TextCorpusArtifact:
    text = resources.files("nemotron.stages").joinpath("demo_corpus.txt").read_text(encoding="utf-8")
    documents = [line for line in text.splitlines() if line.strip()]
    out = workdir / "corpus"
    out.mkdir(parents=True, exist_ok=True)
    body = "".join(json.dumps({"text": doc}) + "\n" for doc in documents).encode()
    (out / "corpus.jsonl").write_bytes(body)
    corpus = TextCorpusArtifact(
        path=out, num_documents=len(documents), num_bytes=len(body), sha256=hashlib.sha256(body).hexdigest()
    )
    return log_artifact(corpus, tracking, name="demo-corpus")


def count_vocabulary(config, tracking: ArtifactTracking) -> VocabularyArtifact:
    """``config`` holds ``run.data`` and ``vocab.input`` / ``vocab.output`` (``${art:}``-resolved)."""
    from omegaconf import OmegaConf

    resolved = OmegaConf.to_container(config, resolve=True)
    counts: collections.Counter[str] = collections.Counter()
    with open(resolved["vocab"]["input"], encoding="utf-8") as lines:
        for line in lines:
            counts.update(word.strip(".,-").lower() for word in json.loads(line)["text"].split())
    counts.pop("", None)
    out = Path(resolved["vocab"]["output"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps(dict(counts.most_common()), indent=1), encoding="utf-8")
    vocab = VocabularyArtifact(
        path=out,
        vocab_size=len(counts),
        num_words=sum(counts.values()),
        corpus=config.run.data,
        metadata={"config": resolved},
    )
    return log_artifact(vocab, tracking, name="demo-vocab", aliases=["demo"])
