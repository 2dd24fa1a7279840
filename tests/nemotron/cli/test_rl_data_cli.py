"""``nemotron <family> data prep rl`` through the real command line."""

import json

import pytest

from helpers import REPO, run_cli

SAMPLES = REPO / "nemotron" / "data" / "samples" / "rl"
SHAPES = "data_prep/rl=shapes"  # the samples of every record shape (the tiny default is the sums task alone)


def test_rl_prep_logs_a_typed_artifact_whose_train_path_resolves(isolated):
    done = run_cli("nano3", "data", "prep", "rl", SHAPES, cwd=isolated)
    assert done.returncode == 0, done.stderr
    from nemo_runspec.artifacts import setup_artifact_tracking
    from nemotron.kit import SplitJsonlDataArtifact

    tracking = setup_artifact_tracking({"root": str(isolated / "artifacts")})
    art = SplitJsonlDataArtifact.from_uri("nano3-rl-data-tiny:latest")
    assert art.name == "nano3-rl-data-tiny" and art.version == 1
    assert (art.train_count, art.val_count, art.test_count) == (304, 17, 17)
    for path, count in ((art.train_path, art.train_count), (art.val_path, art.val_count), (art.test_path, art.test_count)):
        assert path.parent == art.path and len(path.read_text().splitlines()) == count
    assert art.record_schema == "nemotron.rl_prompts/v1" and art.manifest_path == art.path / "manifest.json"
    manifest = json.loads(art.manifest_path.read_text())
    assert manifest["files"]["train"]["count"] == art.train_count and manifest["seed"] == 1234
    assert [s.name for s in art.sources] == ["arithmetic", "chat-math", "gym-math"]
    assert all(len(s.sha256) == 64 and s.num_bytes > 0 for s in art.sources)
    meta = art.metadata
    assert (meta["records_read"], meta["kept"], meta["duplicates"], meta["same_prompt"]) == (340, 338, 2, 1)
    assert meta["skipped"] == {} and meta["prompts"] == {"train": 303, "val": 17, "test": 17}
    assert meta["config"]["data_prep"]["splits"] == {"train": None, "val": 0.05, "test": 0.05}
    assert meta["config"]["run"]["name"] == "nano3-rl-data-tiny"
    assert meta["fields"] == ["id", "source", "messages", "problem", "expected_answer",
                              "responses_create_params", "extra_env_info"]
    inputs = tracking.resolve("nano3-rl-data-tiny:v1").inputs
    assert inputs == [str(SAMPLES / name) for name in ("arithmetic.jsonl", "chat_math.jsonl", "gym_math.jsonl")]
    row = json.loads(art.train_path.read_text().splitlines()[0])
    assert row["responses_create_params"]["input"] == row["messages"]
    assert row["extra_env_info"]["ground_truth"] == row["expected_answer"]

    shown = run_cli("nano3", "data", "prep", "rl", SHAPES, "--dry-run", "+run.data=nano3-rl-data-tiny:latest",
                    "+x=${art:data,train_path}", cwd=isolated)
    assert shown.returncode == 0, shown.stderr
    assert f"x: {art.train_path}" in shown.stdout
    again = run_cli("nano3", "data", "prep", "rl", SHAPES, cwd=isolated)
    assert again.returncode == 0 and "already holds this output" in again.stdout
    assert not (isolated / "artifacts" / "nano3-rl-data-tiny" / "versions" / "v2.json").exists()

    # An older version holds the first output: going back to its settings logs nothing new.
    other = run_cli("nano3", "data", "prep", "rl", SHAPES, "data_prep.seed=5", cwd=isolated)
    assert other.returncode == 0 and "logged nano3-rl-data-tiny:v2" in other.stdout, other.stderr
    back = run_cli("nano3", "data", "prep", "rl", SHAPES, cwd=isolated)
    assert back.returncode == 0 and "nano3-rl-data-tiny:v1 already holds this output" in back.stdout, back.stdout
    assert not (isolated / "artifacts" / "nano3-rl-data-tiny" / "versions" / "v3.json").exists()


def test_counts_on_the_command_line_and_an_artifact_as_input(isolated):
    done = run_cli("super3", "data", "prep", "rl", SHAPES, "data_prep.splits={val: 20, test: 10}", cwd=isolated)
    assert done.returncode == 0, done.stderr
    record = json.loads((isolated / "artifacts/super3-rl-data-tiny/versions/v1.json").read_text())
    assert record["type"] == "SplitJsonlDataArtifact"
    assert record["metadata"]["prompts"] == {"train": 307, "val": 20, "test": 10}
    assert record["metadata"]["splits"]["val"] == {"count": 20}
    # Our own output is a valid input (its rows are in the NeMo-Gym shape); lineage is pinned.
    blend = "data_prep.blend=[{name: again, path: 'art://super3-rl-data-tiny:latest', glob: train.jsonl}]"
    again = run_cli("super3", "data", "prep", "rl", blend, "run.name=rl-again", cwd=isolated)
    assert again.returncode == 0, again.stderr
    second = json.loads((isolated / "artifacts/rl-again/versions/v1.json").read_text())
    assert second["inputs"] == ["art://super3-rl-data-tiny:v1"]
    assert second["fields"]["sources"][0]["uri"] == "art://super3-rl-data-tiny:v1"
    assert second["metadata"]["records_read"] == 308 and second["metadata"]["duplicates"] == 0


@pytest.mark.parametrize("args,fragment", [
    (["data_prep.splits={val: 500, test: 200}"], "asks for 500 val + 200 test prompts"),
    (["data_prep.splits={train: 1, val: 0.5}"], "with train given, every split must be a ratio"),
    (["data_prep.splits={val: 1.5}"], "data_prep.splits.val=1.5 is a fraction above 1"),
    (["data_prep.on_error=ignore"], "data_prep.on_error must be one of 'fail', 'skip', got"),
    (["variant=full"], "data_prep.blend is missing"),
])
def test_bad_settings_are_one_line_errors(isolated, args, fragment):
    done = run_cli("nano3", "data", "prep", "rl", *args, cwd=isolated)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 2 and fragment in lines[0], done.stderr
    assert not (isolated / "artifacts").exists()


def test_a_split_asked_for_that_comes_out_empty_is_refused(isolated, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text((json.dumps({"problem": "What is 1+1?", "answer": 2}) + "\n") * 2)  # one prompt, de-duplicated
    blend = f"data_prep.blend=[{{name: mine, path: '{prompts}'}}]"
    done = run_cli("nano3", "data", "prep", "rl", blend, "data_prep.splits={val: 0.05, test: 0.05}", cwd=isolated)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 2, done.stderr
    assert lines[0] == (f"error: the val split of 1 distinct prompts of {prompts} is empty, though "
                        "data_prep.splits.val=0.05 asks for it"), done.stderr
    assert not (isolated / "artifacts").exists()


def test_bad_record_names_file_and_line_and_skip_counts_it(isolated, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"problem": "What is 1+1?", "answer": 2}) + "\n"
                       + json.dumps({"problem": "What is 2+2?"}) + "\n"
                       + "{oops\n")
    blend = f"data_prep.blend=[{{name: mine, path: '{prompts}'}}]"
    done = run_cli("nano3", "data", "prep", "rl", blend, cwd=isolated)
    assert done.returncode == 1 and f"{prompts}:2: no answer" in done.stderr
    skipped = run_cli("nano3", "data", "prep", "rl", blend, "data_prep.on_error=skip",
                      "data_prep.splits={val: 0, test: 0}", cwd=isolated)
    assert skipped.returncode == 0, skipped.stderr
    record = json.loads((isolated / "artifacts/nano3-rl-data-tiny/versions/v1.json").read_text())
    assert record["metadata"]["skipped"] == {"no_answer": 1, "malformed_json": 1}
    assert record["fields"]["train_count"] == 1
