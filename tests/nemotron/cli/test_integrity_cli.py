"""Trust in every artifact, from the command line: `verify --content` finds a changed byte, the next
training refuses it, `reproduce` rebuilds data preps, an import and a pretraining bit for bit,
`diff` tells two sweep jobs apart, and `gc` frees what nothing refers to without breaking lineage.

One small pipeline (on copies of the shipped sums samples, so a test may change a source) serves
every test: preps, a 12-step pretraining, a two-job SFT sweep, a one-step RL run.
"""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers import REPO, run_cli

pytestmark = pytest.mark.slow
SAMPLES = REPO / "nemotron" / "data" / "samples"
PRETRAIN = ["train.steps=12", "train.checkpoint_interval=0", "train.eval_interval=0"]
SFT = ["train.steps=4", "train.checkpoint_interval=0", "train.eval_interval=0"]


def blend(work: Path, stage: str) -> str:
    return f"data_prep.blend=[{{name: sums, path: '{work / 'src' / stage / 'sums.jsonl'}'}}]"


def cli(work: Path, *args: str, ok: bool = True, timeout: float = 600, env: dict | None = None):
    done = run_cli(*args, cwd=work, timeout=timeout, env=env)
    if ok:
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("integrity")
    for stage in ("pretrain", "sft", "rl"):
        (work / "src" / stage).mkdir(parents=True)
        shutil.copy(SAMPLES / stage / "sums.jsonl", work / "src" / stage / "sums.jsonl")
    cli(work, "nano3", "data", "prep", "pretrain", blend(work, "pretrain"))
    # An absolute output root outside the working directory: its checkpoint still reproduces
    # byte for byte in reproduce's scratch folder.
    cli(work, "nano3", "pretrain", *PRETRAIN, f"train.output_root={tmp_path_factory.mktemp('elsewhere')}")
    cli(work, "nano3", "data", "prep", "sft", blend(work, "sft"))
    cli(work, "nano3", "sft", "-m", "optimizer.lr=1e-3,2e-3", *SFT)
    cli(work, "nano3", "data", "prep", "rl", blend(work, "rl"))
    cli(work, "nano3", "rl", "rl.steps=1", timeout=900)
    return work


def record(work: Path, name: str, version: int = 1) -> dict:
    return json.loads((work / "artifacts" / name / "versions" / f"v{version}.json").read_text())


@contextmanager
def one_byte_changed(work: Path, name: str, suffix: str, version: int = 1):
    """Flip one byte in the middle of the first file of ``name:vN`` ending in ``suffix`` (its size
    stays); put it back afterwards. Yields the file's path inside the artifact."""
    rec = record(work, name, version)
    relative = next(e["path"] for e in rec["contents"]["files"] if e["path"].endswith(suffix))
    file = Path(rec["path"]) / relative
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))
    try:
        yield relative
    finally:
        data[len(data) // 2] ^= 0xFF
        file.write_bytes(bytes(data))


def test_every_version_has_a_manifest_and_verifies_file_by_file(work):
    for name in ("nano3-pretrain-data-tiny", "nano3-pretrain-model-tiny", "nano3-sft-data-tiny",
                 "nano3-sft-model-tiny", "nano3-rl-data-tiny", "nano3-rl-model-tiny"):
        manifest = record(work, name)["contents"]
        assert manifest["algorithm"] == "blake2b-256" and manifest["files"], name
        assert "metadata.json" not in [e["path"] for e in manifest["files"]]
    done = cli(work, "artifact", "verify", "--content")
    assert "all valid" in done.stdout and "checked file by file" in done.stdout
    shown = cli(work, "artifact", "show", "nano3-pretrain-model-tiny:v1").stdout
    assert "blake2b-256 root" in shown


@pytest.mark.parametrize("name, suffix, readers", [
    ("nano3-pretrain-data-tiny", ".bin", [["nano3", "pretrain", *PRETRAIN]]),
    ("nano3-pretrain-model-tiny", ".distcp", [["nano3", "sft", *SFT],
                                              ["nano3", "model", "export", "hf", "nano3-pretrain-model-tiny:v1", "hf-out"]]),
    ("nano3-sft-data-tiny", ".parquet", [["nano3", "sft", *SFT]]),
    ("nano3-rl-data-tiny", "train.jsonl", [["nano3", "rl", "rl.steps=1"]]),
], ids=["shard", "checkpoint", "parquet", "jsonl-split"])
def test_one_changed_byte_is_found_by_verify_and_refused_by_the_next_training(work, name, suffix, readers):
    versions = len(list((work / "artifacts").glob("*/versions/v*.json")))
    with one_byte_changed(work, name, suffix) as changed:
        verified = cli(work, "artifact", "verify", f"{name}:v1", "--content", ok=False)
        assert verified.returncode == 1 and f"{name}:v1: {changed}: content changed" in verified.stderr
        for reader in readers:
            refused = cli(work, *reader, ok=False)
            assert refused.returncode == 1, refused.stdout[-2000:]
            assert f"error: art://{name}:v1 changed since it was published: {changed}: content changed" in refused.stderr
            assert "Traceback" not in refused.stderr and "verify" in refused.stderr
    assert not (work / "hf-out").exists()
    assert len(list((work / "artifacts").glob("*/versions/v*.json"))) == versions   # nothing logged
    assert "all valid" in cli(work, "artifact", "verify", f"{name}:v1", "--content").stdout


def test_a_change_that_keeps_the_mtime_needs_verify_inputs(work):
    import os

    rec = record(work, "nano3-sft-data-tiny")
    file = Path(rec["path"]) / next(e["path"] for e in rec["contents"]["files"] if e["path"].endswith(".parquet"))
    stat = file.stat()
    with one_byte_changed(work, "nano3-sft-data-tiny", ".parquet"):
        os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        # The quick check trusts an unchanged size and mtime (tests/nemo_runspec/test_contents.py);
        # --verify-inputs digests every file.
        refused = cli(work, "nano3", "sft", "--verify-inputs", *SFT, ok=False)
        assert "error: art://nano3-sft-data-tiny:v1 changed since it was published" in refused.stderr


@pytest.mark.parametrize("name", ["nano3-pretrain-data-tiny", "nano3-sft-data-tiny", "nano3-rl-data-tiny",
                                  "nano3-pretrain-model-tiny", "nano3-rl-model-tiny"])
def test_reproduce_rebuilds_identical_files_and_logs_nothing(work, name):
    versions = len(list((work / "artifacts").glob("*/versions/v*.json")))
    # A training reruns with the torch threads it recorded, whatever this shell's OMP_NUM_THREADS.
    threads = record(work, name)["metadata"].get("cpu_threads")
    other = {"OMP_NUM_THREADS": "1" if threads != 1 else "3"}
    assert threads or "model" not in name
    done = cli(work, "artifact", "reproduce", f"{name}:v1", env=other)
    assert f"{name}:v1: identical (" in done.stdout
    assert len(list((work / "artifacts").glob("*/versions/v*.json"))) == versions


@pytest.mark.parametrize("stage, changed", [("pretrain", ".bin: size changed"), ("sft", ".parquet: "),
                                            ("rl", "train.jsonl: size changed")])
def test_reproduce_names_what_differs_after_a_source_changed(work, stage, changed):
    name = f"nano3-{stage}-data-tiny"
    source = work / "src" / stage / "sums.jsonl"
    original = source.read_text()
    lines = original.splitlines(keepends=True)
    source.write_text("".join(lines[:-1]))                                  # one record fewer
    try:
        done = cli(work, "artifact", "reproduce", f"{name}:v1", ok=False)
    finally:
        source.write_text(original)
    assert done.returncode == 1 and f"{name}:v1 did not reproduce" in done.stderr
    assert f"warning: source {source} changed since {name}:v1 was made" in done.stderr
    assert any(line.startswith(f"{name}:v1: ") and changed in line for line in done.stderr.splitlines()), done.stderr


def test_an_import_reproduces_until_the_imported_files_change(work):
    rl_data = Path(record(work, "nano3-rl-data-tiny")["path"])
    user = work / "user-rl"
    shutil.copytree(rl_data, user, ignore=shutil.ignore_patterns("metadata.json", "manifest.json"))
    cli(work, "nano3", "data", "import", "rl", str(user), "--name", "user-rl")
    assert "user-rl:v1: identical" in cli(work, "artifact", "reproduce", "user-rl:v1").stdout
    original = (user / "val.jsonl").read_text()
    (user / "val.jsonl").write_text(original.replace("+", "plus", 1))
    try:
        found = cli(work, "artifact", "verify", "user-rl:v1", "--content", ok=False)
        assert "user-rl:v1: val.jsonl: size changed" in found.stderr         # the link is followed
        changed = cli(work, "artifact", "reproduce", "user-rl:v1", ok=False)
        assert changed.returncode == 1 and "user-rl:v1: val.jsonl: size changed" in changed.stderr
    finally:
        (user / "val.jsonl").write_text(original)


def test_diff_tells_two_sweep_jobs_apart(work):
    done = cli(work, "artifact", "diff", "nano3-sft-model-tiny:v1", "nano3-sft-model-tiny:v2")
    assert "config optimizer.lr" in done.stdout and "0.001" in done.stdout and "0.002" in done.stdout
    assert "field final_loss" in done.stdout and "contents (root digest)" in done.stdout
    assert "config train.steps" not in done.stdout
    same = cli(work, "artifact", "diff", "nano3-sft-model-tiny:v2", "nano3-sft-model-tiny:v2")
    assert "do not differ" in same.stdout


def test_gc_frees_the_unreferenced_sweep_job_and_the_rl_lineage_stays_whole(work):
    sweep_job = record(work, "nano3-sft-model-tiny", 1)
    listed = cli(work, "artifact", "gc", "--dry-run").stdout
    assert "would delete" in listed and "nano3-sft-model-tiny:v1" in listed
    assert Path(sweep_job["owned_dir"]).is_dir()
    done = cli(work, "artifact", "gc").stdout
    assert "deleted" in done and "nano3-sft-model-tiny:v1" in done
    assert not Path(sweep_job["owned_dir"]).exists()
    for name in ("nano3-pretrain-data-tiny", "nano3-pretrain-model-tiny", "nano3-sft-data-tiny", "nano3-rl-data-tiny"):
        assert Path(record(work, name)["path"]).is_dir(), name
    assert (work / "src" / "rl" / "sums.jsonl").is_file()                  # inputs outside the registry stay
    tree = cli(work, "artifact", "lineage", "nano3-rl-model-tiny:latest", "--format", "json").stdout
    nodes = json.dumps(json.loads(tree))
    for ref in ('"nano3-sft-model-tiny", "version": 2', '"nano3-pretrain-model-tiny", "version": 1',
                '"nano3-pretrain-data-tiny", "version": 1', '"nano3-rl-data-tiny", "version": 1'):
        assert ref in nodes
    assert '"deleted": true' not in nodes and '"error"' not in nodes
    shown = cli(work, "artifact", "show", "nano3-sft-model-tiny:v1").stdout
    assert "data deleted by gc" in shown
    refused = cli(work, "nano3", "rl", "run.model=nano3-sft-model-tiny:v1", "rl.steps=1", ok=False)
    assert refused.returncode == 1 and "its data was deleted by `nemotron artifact gc`" in refused.stderr
    assert "all valid" in cli(work, "artifact", "verify", "--content").stdout
    rebuilt = cli(work, "artifact", "reproduce", "nano3-sft-model-tiny:v1", "--log").stdout   # gc undone
    assert "nano3-sft-model-tiny:v1: identical" in rebuilt and "(logged nano3-sft-model-tiny:v3)" in rebuilt
    assert record(work, "nano3-sft-model-tiny", 3)["inputs"] == sweep_job["inputs"]
    assert Path(sweep_job["owned_dir"]).is_dir()
    again = cli(work, "artifact", "reproduce", "nano3-sft-model-tiny:v2", "--log").stdout
    assert "nano3-sft-model-tiny:v2 already holds this output" in again and "nothing was rebuilt" in again
