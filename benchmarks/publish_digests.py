"""What the content manifest costs at publish: publish time with digests vs without.

Two workloads, each published into a scratch registry once with ``artifacts.digests`` off (the
baseline) and once on, best of --repeat:

  pipe   every artifact directory a registry holds (--registry, e.g. a tiny pipe's ./artifacts),
         re-published as a plain Artifact of the same path
  1 GB   a data artifact of --size-mb MiB in 64 MiB shards (random bytes, written once)

It also times the manifest of the large artifact with one thread against the thread pool, and
prints every figure as a ratio to its baseline.

    .venv/bin/python benchmarks/publish_digests.py [--registry artifacts] [--size-mb 1024] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nemo_runspec import contents  # noqa: E402
from nemo_runspec.artifacts import Artifact, ArtifactTracking  # noqa: E402
from nemo_runspec.registry.manifest import ManifestRegistry  # noqa: E402


class Sidecarless(Artifact):
    """Leaves the real artifacts' metadata.json alone."""

    def save_metadata(self, record):
        return None


def publish_all(paths: list[Path], digests: bool, scratch: Path) -> float:
    root = scratch / f"registry-{digests}-{time.monotonic_ns()}"
    tracking = ArtifactTracking(registry=ManifestRegistry(root), digests=digests)
    start = time.perf_counter()
    for index, path in enumerate(paths):
        tracking.publish(Sidecarless(path=path), f"a{index}")
    elapsed = time.perf_counter() - start
    shutil.rmtree(root)
    return elapsed


def best(repeat: int, run) -> float:
    return min(run() for _ in range(repeat))


def large_artifact(directory: Path, size_mb: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    shard, left, index = 64, size_mb, 0
    while left > 0:
        with open(directory / f"part-{index:05d}.bin", "wb") as out:
            for _ in range(min(shard, left)):
                out.write(os.urandom(1 << 20))
        left, index = left - shard, index + 1
    return directory


def report(label: str, baseline: float, measured: float, what: str) -> None:
    print(f"{label:<34} baseline {baseline:8.3f} s   {what} {measured:8.3f} s   ratio {measured / baseline:6.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", type=Path, default=Path("artifacts"))
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-digests-"))
    try:
        if args.registry.is_dir():
            records = list(ManifestRegistry(args.registry).records())
            paths = [Path(r.path) for r in records if Path(r.path).exists()]
            size = sum(contents.manifest_of(p).total_bytes for p in paths)
            off = best(args.repeat, lambda: publish_all(paths, False, scratch))
            on = best(args.repeat, lambda: publish_all(paths, True, scratch))
            report(f"pipe: {len(paths)} artifacts, {size / 2**20:.1f} MiB", off, on, "digests")
        else:
            print(f"no registry at {args.registry}: the pipe workload is skipped (run `nemotron nano3 pipe` first)")
        big = large_artifact(scratch / "big", args.size_mb)
        off = best(args.repeat, lambda: publish_all([big], False, scratch))
        on = best(args.repeat, lambda: publish_all([big], True, scratch))
        report(f"data artifact: {args.size_mb} MiB", off, on, "digests")
        threads = best(args.repeat, lambda: _timed(lambda: contents.manifest_of(big)))
        original = contents._POOL_MIN_BYTES
        contents._POOL_MIN_BYTES = 1 << 62
        try:
            serial = best(args.repeat, lambda: _timed(lambda: contents.manifest_of(big)))
        finally:
            contents._POOL_MIN_BYTES = original
        report(f"manifest of {args.size_mb} MiB: one thread", serial, threads, f"pool ({os.cpu_count()} cores)")
        print(f"digest rate: {args.size_mb / threads:.0f} MiB/s with the pool, {args.size_mb / serial:.0f} MiB/s in one thread")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
