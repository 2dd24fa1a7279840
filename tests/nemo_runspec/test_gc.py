"""Garbage collection: the data of unreferenced versions goes, every record and all lineage stay."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from nemo_runspec import lineage
from nemo_runspec.artifacts import Artifact, log_artifact
from nemo_runspec.errors import ArtifactDeletedError, InvalidNameError
from nemo_runspec.registry import gc


class Node(Artifact):
    parents: list[str] = []

    def get_input_uris(self):
        return self.parents


def publish(tracking, tmp_path, name, *parents, owned=True, size=100):
    directory = tmp_path / "out" / name / f"d{tracking.registry.latest_version(name) + 1}"
    directory.mkdir(parents=True)
    (directory / "data.bin").write_bytes(b"x" * size)
    return log_artifact(Node(path=directory, parents=list(parents)), tracking, name=name,
                        owned_dir=directory if owned else None)


@pytest.fixture
def chain(tracking, tmp_path):
    """data v1..v3, model v1 (from data:v1) and v2 (from data:v3), tuned v1 (from model:v2);
    notes v1..v2 logged by hand (no owned directory); data:v2 carries the alias `keep`."""
    for _ in range(3):
        publish(tracking, tmp_path, "data")
    publish(tracking, tmp_path, "model", "data:v1")
    publish(tracking, tmp_path, "model", "data:v3")
    publish(tracking, tmp_path, "tuned", "model:v2", "/raw/user-file.jsonl")
    publish(tracking, tmp_path, "notes", owned=False)
    publish(tracking, tmp_path, "notes", owned=False)
    tracking.set_alias("data:v2", "keep")
    return tracking


def test_only_unreferenced_versions_lose_their_data_and_their_records_stay(chain, tmp_path):
    planned = gc.plan(chain.registry)
    assert [c.record.ref for c in planned.delete] == ["data:v1", "model:v1"]  # data:v1 only model:v1 used
    assert [(r.ref, why) for r, why in planned.left] == [("notes:v1", "its path was not made by a nemotron step")]
    assert planned.bytes > 200 and (tmp_path / "out" / "data" / "d1").is_dir()  # a plan deletes nothing

    done = gc.collect(chain.registry)
    assert [c.record.ref for c in done.delete] == ["data:v1", "model:v1"]
    assert not (tmp_path / "out" / "data" / "d1").exists() and not (tmp_path / "out" / "model" / "d1").exists()
    for kept in ("data/d2", "data/d3", "model/d2", "tuned/d1", "notes/d1"):
        assert (tmp_path / "out" / kept / "data.bin").is_file(), kept
    assert chain.registry.verify() == []
    record = chain.registry.read_version("data", 1)                       # the record stays, marked
    assert record.deleted is not None and record.deleted.bytes_freed == done.delete[0].size
    assert chain.registry.latest_version("data") == 3
    assert gc.collect(chain.registry).delete == []                         # nothing left to do


def test_keep_last_keeps_more_versions(chain):
    assert gc.plan(chain.registry, keep_last=2).delete == []               # model:v1 kept, and with it data:v1


def test_a_deleted_version_reads_as_deleted_and_its_lineage_prints_whole(chain, tracking):
    from rich.console import Console

    gc.collect(chain.registry)
    fresh = type(tracking)(registry=tracking.registry)                     # no cached resolutions
    with pytest.raises(ArtifactDeletedError, match=r"art://model:v1: its data was deleted by `nemotron artifact gc`"):
        fresh.resolve("model:v1")
    with pytest.raises(ArtifactDeletedError):
        Node.from_uri("model:v1", fresh)
    tree = lineage.ancestors(fresh, "model:v1")                              # records are enough for lineage
    assert [n.uri for n in tree.links] == ["art://data:v1"] and tree.record.deleted is not None
    console = Console(record=True, width=200)
    console.print(lineage.to_rich_tree(tree))
    assert console.export_text().count("(data deleted by gc)") == 2
    assert lineage.to_json(tree)["deleted"] is True
    assert lineage.ancestors(fresh, "tuned:v1").walk()[-1].uri == "/raw/user-file.jsonl"


def test_a_version_published_while_gc_plans_keeps_what_it_names(chain, tmp_path):
    def publish_now(planned):  # between gc's listing and its marks: the worst moment
        assert "model:v1" in [c.record.ref for c in planned.delete]
        publish(chain, tmp_path, "tuned", "model:v1")

    done = gc.collect(chain.registry, before_marking=publish_now)
    assert done.delete == []
    assert (tmp_path / "out" / "model" / "d1" / "data.bin").is_file()
    assert (tmp_path / "out" / "data" / "d1" / "data.bin").is_file()       # model:v1's own input, too
    assert chain.registry.read_version("model", 1).deleted is None


def test_a_run_that_read_a_version_gc_then_deleted_publishes_nothing(chain, tmp_path):
    stale = type(chain)(registry=chain.registry)
    stale.resolve("model:v1")                                              # the run resolved it before gc
    gc.collect(chain.registry)
    directory = tmp_path / "late"
    directory.mkdir()
    with pytest.raises(ArtifactDeletedError, match="model:v1"):
        log_artifact(Node(path=directory, parents=["model:v1"]), stale, name="late")
    assert chain.registry.latest_version("late") == 0


def test_a_concurrent_publisher_loses_nothing(tracking, tmp_path):
    for _ in range(30):
        publish(tracking, tmp_path, "data")
    script = textwrap.dedent(f"""
        from pathlib import Path
        from nemo_runspec.artifacts import Artifact, log_artifact, setup_artifact_tracking
        class Node(Artifact):  # the type the name is bound to
            parents: list[str] = []
        tracking = setup_artifact_tracking({{"root": {str(tracking.registry.root)!r}}})
        for index in range(40):
            directory = Path({str(tmp_path)!r}) / "racer" / f"r{{index}}"
            directory.mkdir(parents=True)
            (directory / "data.bin").write_bytes(b"y" * 1000)
            log_artifact(Node(path=directory), tracking, name="data", owned_dir=directory)
        print("RACER DONE")
    """)
    racer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = []
    while racer.poll() is None:
        results.append(gc.collect(tracking.registry))
    out, err = racer.communicate(timeout=120)
    assert "RACER DONE" in out, err
    results.append(gc.collect(tracking.registry))
    latest = tracking.registry.latest_version("data")
    assert latest == 70 and tracking.registry.verify() == []
    assert tracking.registry.read_version("data", latest).deleted is None
    for result in results:  # what was published while a gc ran was never that gc's to delete
        assert all(c.record.version < result.listed["data"] for c in result.delete)
    deleted = [c.record.version for result in results for c in result.delete]
    assert sorted(deleted) == list(range(1, latest))                         # every version but latest, once
    assert (tmp_path / "racer" / "r39" / "data.bin").read_bytes() == b"y" * 1000


def test_two_gcs_never_run_at_once(chain):
    started, release = threading.Event(), threading.Event()

    def hold(planned):
        started.set()
        release.wait(10)

    worker = threading.Thread(target=gc.collect, args=(chain.registry,), kwargs={"before_marking": hold})
    worker.start()
    started.wait(10)
    try:
        with pytest.raises(gc.GcBusyError, match="another gc is running"):
            gc.collect(chain.registry)
    finally:
        release.set()
        worker.join()


def test_an_empty_name_is_refused_not_replaced_by_the_class_name(tracking, tmp_path):
    with pytest.raises(InvalidNameError, match="invalid artifact name ''"):
        log_artifact(Node(path=tmp_path), tracking, name="")
    assert tracking.registry.names() == []
