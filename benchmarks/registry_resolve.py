"""Resolving `latest`, `vN` and an alias with 10,000 versions vs with 1 (same process).

Also times a directory-scanning resolver (what a registry without a latest pointer does) on
the 10,000-version name, to show what the hint-and-probe design avoids.

    .venv/bin/python benchmarks/registry_resolve.py [--versions 10000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from nemo_runspec.refs import ArtifactRef
from nemo_runspec.registry import ArtifactRecord, ManifestRegistry


def per_call_us(fn, repeat: int = 2000) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1e6


def fill(registry: ManifestRegistry, name: str, count: int) -> None:
    draft = ArtifactRecord(name=name, type="BenchArtifact", path="/bench", created_at=datetime.now(timezone.utc))
    for _ in range(count):
        registry.publish(draft)
    registry.set_alias(name, "best", max(1, count // 2))


def scan_latest(registry: ManifestRegistry, name: str) -> ArtifactRecord:
    versions = registry.root / name / "versions"
    latest = max(int(p.stem[1:]) for p in versions.iterdir())
    return registry.read_version(name, latest)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--versions", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        registry = ManifestRegistry(Path(tmp))
        start = time.perf_counter()
        fill(registry, "one", 1)
        fill(registry, "many", args.versions)
        print(f"published {args.versions + 1} versions in {time.perf_counter() - start:.1f} s")
        for label, selector in (("latest", "latest"), ("vN", None), ("alias", "best")):
            one = per_call_us(lambda: registry.resolve(ArtifactRef("one", selector or "v1")))
            many = per_call_us(lambda: registry.resolve(ArtifactRef("many", selector or f"v{args.versions // 3}")))
            print(f"resolve {label:6s}: 1 version {one:7.1f} us, {args.versions} versions {many:7.1f} us, ratio {many / one:.2f}")
        ours = per_call_us(lambda: registry.resolve(ArtifactRef("many")), 200)
        scan = per_call_us(lambda: scan_latest(registry, "many"), 200)
        print(f"latest by directory scan: {scan:.1f} us vs ours {ours:.1f} us: ours is {scan / ours:.1f}x faster")


if __name__ == "__main__":
    main()
