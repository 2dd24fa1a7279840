"""The interface every registry backend implements (manifest on a file system, W&B, ...)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

from nemo_runspec.refs import ArtifactRef
from nemo_runspec.registry.record import ArtifactRecord


class ArtifactBackend(ABC):
    """A versioned store of artifact records.

    The primary backend allocates versions; secondary backends (mirrors such as W&B) receive
    each published record through :meth:`mirror` and may answer :meth:`resolve` for names the
    primary does not know.
    """

    name: str = "backend"

    @abstractmethod
    def publish(self, draft: ArtifactRecord) -> ArtifactRecord:
        """Store ``draft`` as the next version of its name and return the published record."""

    @abstractmethod
    def resolve(self, ref: ArtifactRef) -> ArtifactRecord:
        """The record a reference points at; raises ArtifactNotFoundError."""

    def mirror(self, record: ArtifactRecord, inputs: list[ArtifactRecord]) -> None:
        """Record a version that another backend published (secondary backends only)."""
        raise NotImplementedError(f"{self.name} cannot mirror artifacts")

    def set_alias(self, name: str, alias: str, version: int) -> None:
        raise NotImplementedError(f"{self.name} does not support aliases")

    def mirror_alias(self, record: ArtifactRecord, alias: str) -> None:
        """Point ``alias`` at ``record`` here too, after the primary backend moved it (mirrors)."""

    def aliases(self, name: str) -> dict[str, int]:
        return {}

    def names(self) -> list[str]:
        return []

    def latest_version(self, name: str) -> int:
        """Highest published version of ``name``, 0 when it has none."""
        return 0

    def records(self) -> Iterator[ArtifactRecord]:
        """Every record this backend holds (used for descendant queries)."""
        return iter(())
