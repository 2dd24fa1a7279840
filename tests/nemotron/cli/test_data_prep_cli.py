"""``nemotron <family> data prep pretrain`` end to end through the real command line."""

import json
from pathlib import Path

import pytest

from helpers import REPO, kill_cli_when, run_cli

SAMPLES = REPO / "nemotron" / "data" / "samples" / "pretrain"


def big_corpus(path: Path, copies: int) -> Path:
    lines = (SAMPLES / "python_docs.jsonl").read_text().splitlines()
    with open(path, "w") as f:
        for copy in range(copies):
            for line in lines:
                record = json.loads(line)
                f.write(json.dumps({"text": f"{copy}: {record['text']}"}) + "\n")
    return path


def blend_override(path: Path) -> str:
    return f"data_prep.blend=[{{name: docs, path: '{path}'}}]"


def output_tree(root: Path) -> dict[str, bytes]:
    (run_dir,) = [p for p in root.glob("*/*") if p.is_dir()]
    return {
        str(p.relative_to(run_dir)): p.read_bytes().replace(str(run_dir).encode(), b"<RUN>")
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name not in ("metadata.json", "resolved_config.yaml")
    }


def test_tiny_prep_logs_a_typed_artifact_with_lineage_and_config(isolated):
    done = run_cli("nano3", "data", "prep", "pretrain", cwd=isolated)
    assert done.returncode == 0, done.stderr
    from nemo_runspec.artifacts import setup_artifact_tracking
    from nemotron.kit import PretrainBlendsArtifact

    tracking = setup_artifact_tracking({"root": str(isolated / "artifacts")})
    art = PretrainBlendsArtifact.from_uri("nano3-pretrain-data-tiny:latest")
    assert art.total_tokens == sum(art.split_tokens.values()) > 100_000
    assert art.split_sequences["valid"] > 0 and art.num_shards >= 3
    assert art.blend_path == art.path / "blend.json" and art.blend_path.is_file()
    assert art.tokenizer.vocab_size == 2048 and len(art.tokenizer.sha256) == 64
    assert {s.name for s in art.sources} == {"python-docs", "python-docstrings", "sums", "gettysburg"}
    assert all(len(s.sha256) == 64 and s.num_bytes > 0 for s in art.sources)
    assert art.metadata["config"]["data_prep"]["shards_per_dataset"] == 2
    assert art.metadata["tokens_per_s"] > 0 and art.metadata["skipped"] == {}
    assert (art.path / "resolved_config.yaml").is_file()
    inputs = tracking.resolve("nano3-pretrain-data-tiny:v1").inputs
    assert art.tokenizer.path in inputs and str(SAMPLES / "gettysburg.txt") in inputs

    again = run_cli("nano3", "data", "prep", "pretrain", cwd=isolated)
    assert "already holds this output" in again.stdout
    assert tracking.registry.latest_version("nano3-pretrain-data-tiny") == 1


def test_dry_run_prints_resolved_config_including_artifact_fields(isolated):
    run_cli("super3", "data", "prep", "pretrain", cwd=isolated)
    runs_before = sorted((isolated / "runs").rglob("*"))
    done = run_cli("super3", "data", "prep", "pretrain", "--dry-run", "data_prep.workers=1",
                   "+run.data=super3-pretrain-data-tiny:v1", "+probe=${art:data,total_tokens}",
                   "~launcher", cwd=isolated)
    assert done.returncode == 0, done.stderr
    assert "workers: 1" in done.stdout and "name: super3-pretrain-data-tiny" in done.stdout
    assert "probe: " in done.stdout and "${" not in done.stdout and "launcher:" not in done.stdout
    same = run_cli("super3", "data", "prep", "pretrain", "--cfg", "job", cwd=isolated)
    assert "path: " + str(SAMPLES / "python_docs.jsonl") in same.stdout
    assert sorted((isolated / "runs").rglob("*")) == runs_before  # nothing ran
    assert not (isolated / "artifacts" / "super3-pretrain-data-tiny" / "versions" / "v2.json").exists()


def test_multirun_logs_one_version_per_job_with_its_own_config(isolated):
    done = run_cli("nano3", "data", "prep", "pretrain", "-m", "data_prep.shards_per_dataset=1,3", cwd=isolated)
    assert done.returncode == 0, done.stderr
    from nemo_runspec.registry import ManifestRegistry

    registry = ManifestRegistry(isolated / "artifacts")
    records = list(registry.records())
    assert [r.version for r in records] == [1, 2]
    assert sorted(r.metadata["config"]["data_prep"]["shards_per_dataset"] for r in records) == [1, 3]
    assert records[0].path != records[1].path


@pytest.mark.parametrize("args,fragment", [
    (["model=nope"], "Could not override 'model'"),
    (["data_prep.shards_per_dataset=1,2"], "needs -m/--multirun"),
    (["data_prep.on_error=maybe"], "data_prep.on_error must be one of 'fail', 'skip', got 'maybe'"),
    (["data_prep.shards_per_dataset=abc"], "data_prep.shards_per_dataset must be an integer >= 1, got 'abc'"),
    (["data_prep.blend=[{name: d, path: /nope/*.jsonl}]"], "matches no readable files"),
    (["data_prep.blend=[{name: d, path: /x, weight: -1}]"], "data_prep.blend[0].weight"),
    (["data_prep.blend=[{name: d, path: /x, weight: 0}]"], "weights are all zero"),
    (["tokenizer.path=/nonexistent"], "no tokenizer.json"),
    (["--num-shards", "2"], "--num-shards needs --shard-index"),
    (["variant=full", "tokenizer.path=/x"], "config value data_prep.blend is missing"),
])
def test_bad_input_is_one_line_and_logs_nothing(isolated, args, fragment):
    done = run_cli("nano3", "data", "prep", "pretrain", *args, cwd=isolated)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 2 and fragment in lines[0], done.stderr
    assert not (isolated / "artifacts").exists()


def test_malformed_record_names_file_and_line_and_skip_counts_it(isolated, tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "fine"}\n{"text": "also fine"}\n{"txt": "typo"}\n')
    blend = f"data_prep.blend=[{{name: docs, path: '{corpus}', split: train}}]"  # two documents fill no valid split
    done = run_cli("nano3", "data", "prep", "pretrain", blend, cwd=isolated)
    assert done.returncode == 1 and f"{corpus}:3: no 'text' field" in done.stderr
    done = run_cli("nano3", "data", "prep", "pretrain", blend, "data_prep.on_error=skip", cwd=isolated)
    assert done.returncode == 0, done.stderr
    record = json.loads((isolated / "artifacts/nano3-pretrain-data-tiny/versions/v1.json").read_text())
    assert record["metadata"]["skipped"] == {"missing_text_field": 1}


@pytest.mark.parametrize("name,content,fragment", [
    ("empty.jsonl", b"", "no documents in {path} (skipped: none)"),
    ("damaged.jsonl.gz", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 20,
     "{path}:1: cannot read gzip stream: Error -3 while decompressing data"),
])
def test_input_that_makes_no_blend_is_one_line_and_logs_nothing(isolated, tmp_path, name, content, fragment):
    path = tmp_path / name
    path.write_bytes(content)
    done = run_cli("nano3", "data", "prep", "pretrain", blend_override(path), cwd=isolated)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 2, done.stderr
    assert lines[0].startswith("error: " + fragment.format(path=path)), done.stderr  # one "error:", the file named
    assert not (isolated / "artifacts").exists()


def test_killed_run_resumes_to_the_same_bytes(isolated, tmp_path):
    corpus = big_corpus(tmp_path / "big.jsonl", copies=12)  # ~5.6 MB
    args = ["nano3", "data", "prep", "pretrain", blend_override(corpus), "data_prep.shards_per_dataset=8",
            "data_prep.workers=1"]
    reference = run_cli(*args, "data_prep.output_root=" + str(tmp_path / "reference"), cwd=isolated, timeout=300)
    assert reference.returncode == 0, reference.stderr

    out = tmp_path / "resumed"
    kill_cli_when(*args, f"data_prep.output_root={out}", cwd=isolated, watch=out, pattern="units/*/*.json")
    markers = len(list(out.rglob("units/*/*.json")))
    assert 1 <= markers < 8, "the kill should land mid-run"
    assert not list(out.rglob("blend.json"))

    resumed = run_cli(*args, f"data_prep.output_root={out}", cwd=isolated, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    record = json.loads((isolated / "artifacts/nano3-pretrain-data-tiny/versions/v2.json").read_text())
    assert record["metadata"]["units_reused"] == markers
    assert output_tree(out) == output_tree(tmp_path / "reference")


def test_slices_and_finalize_through_the_cli(isolated, tmp_path):
    args = ["nano3", "data", "prep", "pretrain", "data_prep.shards_per_dataset=3"]
    first = run_cli(*args, "--num-shards", "2", "--shard-index", "0", cwd=isolated)
    assert first.returncode == 0 and "run with --finalize" in first.stdout
    early = run_cli(*args, "--finalize", cwd=isolated)
    assert early.returncode == 1 and "are not prepared yet" in early.stderr
    second = run_cli(*args, "--num-shards", "2", cwd=isolated, env={"SLURM_ARRAY_TASK_ID": "1"})
    assert second.returncode == 0, second.stderr
    final = run_cli(*args, "--finalize", cwd=isolated)
    assert final.returncode == 0 and "logged nano3-pretrain-data-tiny:v1" in final.stdout
