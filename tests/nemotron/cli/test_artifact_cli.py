"""``nemotron demo`` and ``nemotron artifact ...`` as a user runs them, errors included."""

import json

import pytest

from helpers import run_cli


@pytest.fixture
def demo_registry(isolated):
    done = run_cli("demo", cwd=isolated)
    assert done.returncode == 0, done.stderr
    return isolated


def assert_one_line_error(done, *fragments):
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith("error: ") and lines[1].startswith("hint: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in done.stderr


def test_demo_logs_resolves_and_prints_lineage(demo_registry):
    done = run_cli("demo", cwd=demo_registry)
    assert "logged demo-corpus:v2" in done.stdout and "logged demo-vocab:v2" in done.stdout
    assert "resolved ${art:data,path} -> " + str(demo_registry / "runs/demo/corpus/corpus.jsonl") in done.stdout
    assert "demo-corpus:v2" in done.stdout.split("made from")[1]
    assert (demo_registry / "artifacts" / "demo-vocab" / "versions" / "v2.json").is_file()


def test_list_show_and_verify(demo_registry):
    listed = run_cli("artifact", "list", cwd=demo_registry).stdout
    assert "demo-corpus" in listed and "TextCorpusArtifact" in listed and "demo=v1" in listed
    shown = run_cli("artifact", "show", "demo-vocab", cwd=demo_registry).stdout
    for text in ("art://demo-vocab:v1", "VocabularyArtifact", "art://demo-corpus:v1", "vocab_size", "latest, demo"):
        assert text in shown
    verified = run_cli("artifact", "verify", cwd=demo_registry)
    assert verified.returncode == 0 and "2 names, 2 versions, all valid" in verified.stdout


def test_lineage_formats(demo_registry):
    tree = run_cli("artifact", "lineage", "demo-vocab:v1", cwd=demo_registry).stdout
    assert "demo-corpus:v1" in tree
    mermaid = run_cli("artifact", "lineage", "demo-vocab", "--format", "mermaid", cwd=demo_registry).stdout
    assert mermaid.startswith("flowchart TB") and "n1 --> n0" in mermaid
    data = json.loads(run_cli("artifact", "lineage", "demo-vocab", "--format", "json", cwd=demo_registry).stdout)
    assert data["inputs"][0]["name"] == "demo-corpus"
    down = run_cli("artifact", "lineage", "demo-corpus:v1", "--descendants", "--format", "json", cwd=demo_registry)
    assert json.loads(down.stdout)["consumers"][0]["name"] == "demo-vocab"


def test_alias_moves(demo_registry):
    run_cli("demo", cwd=demo_registry)
    done = run_cli("artifact", "alias", "demo-corpus:v1", "production", cwd=demo_registry)
    assert done.stdout.strip() == "demo-corpus:production -> v1"
    run_cli("artifact", "alias", "demo-corpus:v2", "production", cwd=demo_registry)
    assert "art://demo-corpus:v2" in run_cli("artifact", "show", "demo-corpus:production", cwd=demo_registry).stdout


@pytest.mark.parametrize("args,fragments", [
    (("artifact", "show", "nope"), ["no artifact named 'nope'"]),
    (("artifact", "show", "demo-vocab:v7"), ["no version v7", "versions: v1"]),
    (("artifact", "show", "art://demo-vocab:v1:x"), ["malformed artifact reference"]),
    (("artifact", "show", "../etc:v1"), ["malformed artifact reference", "invalid artifact name"]),
    (("artifact", "lineage", "a/b"), ["malformed artifact reference"]),
    (("artifact", "alias", "demo-vocab:v1", "latest"), ["alias 'latest' is reserved"]),
])
def test_bad_input_is_one_line_with_a_hint(demo_registry, args, fragments):
    assert_one_line_error(run_cli(*args, cwd=demo_registry), *fragments)


def test_corrupt_manifest_names_the_file(demo_registry):
    manifest = demo_registry / "artifacts" / "demo-vocab" / "versions" / "v1.json"
    manifest.write_text(manifest.read_text()[:50])
    assert_one_line_error(run_cli("artifact", "show", "demo-vocab:v1", cwd=demo_registry), str(manifest))
    done = run_cli("artifact", "verify", cwd=demo_registry)
    assert done.returncode == 1 and str(manifest) in done.stderr
    listed = run_cli("artifact", "list", cwd=demo_registry)                 # listed, and said, exit 1
    assert listed.returncode == 1 and "demo-corpus" in listed.stdout and "corrupt" in listed.stdout
    assert f"error: {manifest}: corrupt manifest" in listed.stderr and "Traceback" not in listed.stderr


def test_env_toml_syntax_error_names_file_and_line(demo_registry):
    (demo_registry / "env.toml").write_text("[artifacts]\nroot = 'x'\n= broken\n")
    assert_one_line_error(run_cli("artifact", "list", cwd=demo_registry), f"{demo_registry / 'env.toml'}:3")


def test_debug_shows_the_traceback(demo_registry):
    done = run_cli("--debug", "artifact", "show", "nope", cwd=demo_registry)
    assert done.returncode == 1 and "Traceback" in done.stderr and "ArtifactNotFoundError" in done.stderr
