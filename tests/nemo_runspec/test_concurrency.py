"""Many writers, and writers killed mid-publish: versions stay unique, gap-free and readable."""

import random
import signal
import subprocess
import sys
import time

from nemo_runspec.refs import ArtifactRef
from nemo_runspec.registry import ManifestRegistry

WRITER = """
import sys, time
from pathlib import Path
from nemo_runspec.artifacts import Artifact, log_artifact, setup_artifact_tracking

class CounterArtifact(Artifact):
    writer: int
    index: int

root, writes, writer, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
tracking = setup_artifact_tracking({"root": root})
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
for i in range(writes):
    artifact = CounterArtifact(path=Path(root).parent / f"data-{writer}", writer=writer, index=i)
    log_artifact(artifact, tracking, name="shared")
    if i % 3 == 0:
        tracking.set_alias(f"shared:v{artifact.version}", f"w{writer}")
"""


def start_writers(tmp_path, count, writes):
    root, go = tmp_path / "reg", tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(writes), str(w), str(go)],
                         stdout=subprocess.PIPE, text=True)
        for w in range(count)
    ]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    go.touch()
    return root, procs


def test_n_processes_by_m_publishes_give_n_times_m_distinct_versions(tmp_path):
    n, m = 4, 40
    root, procs = start_writers(tmp_path, n, m)
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    registry = ManifestRegistry(root)
    assert registry.latest_version("shared") == n * m
    assert registry.resolve(ArtifactRef("shared")).version == n * m
    seen = [(r.fields["writer"], r.fields["index"]) for r in registry.records()]
    assert sorted(seen) == [(w, i) for w in range(n) for i in range(m)]
    assert registry.verify() == []


def test_publishers_killed_at_random_moments_leave_a_valid_registry(tmp_path):
    rng = random.Random(1234)
    root = tmp_path / "reg"
    for round_ in range(8):
        go = tmp_path / f"go{round_}"
        procs = [
            subprocess.Popen([sys.executable, "-c", WRITER, str(root), "100000", str(w), str(go)],
                             stdout=subprocess.PIPE, text=True)
            for w in range(2)
        ]
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready"
        go.touch()
        time.sleep(rng.uniform(0.02, 0.4))
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    registry = ManifestRegistry(root)
    assert registry.verify() == []
    latest = registry.latest_version("shared")
    assert latest > 0
    assert [r.version for r in registry.records()] == list(range(1, latest + 1))
    for alias, version in registry.aliases("shared").items():
        assert registry.resolve(ArtifactRef("shared", alias)).version == version
    from datetime import datetime, timezone
    from nemo_runspec.registry import ArtifactRecord

    after = registry.publish(ArtifactRecord(name="shared", type="CounterArtifact", path="/x",
                                            created_at=datetime.now(timezone.utc), fields={"writer": 9, "index": 0}))
    assert after.version == latest + 1
