"""Stage-2 prep as a library: input shapes, the one output schema, splits, duplicates, bad records.

Just over 400 lines on purpose: every test builds its input through the same few writers and
reads the output through one reader (the top of the file); split, they would share them across files.
"""

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nemo_runspec.errors import ConfigError, DataError
from nemotron.data.rl_prep import MANIFEST, RLSettings, prepare_rl
from nemotron.data.rl_records import ANSWER_KEYS, FIELDS, PROBLEM_KEYS, SCHEMA, SCHEMA_VERSION, prompt_identity, to_prompt
from nemotron.data.splits import split_spec
from nemotron.data.text_sources import DatasetSpec, resolve_files
from nemotron.recipes import ASSETS_DIR

SAMPLES = ASSETS_DIR / "samples" / "rl"
SPLIT_FILES = ("train.jsonl", "val.jsonl", "test.jsonl")


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def run(out, datasets, splits=None, seed=1234, on_error="fail", resolve=None):
    files = [f for d in datasets for f in resolve_files(d, resolve)]
    settings = RLSettings(str(out), split_spec(splits or {"val": 0.1, "test": 0.1}), seed, on_error)
    return prepare_rl(datasets, files, settings, show_progress=False)


def read_splits(out: Path) -> dict[str, list[dict]]:
    return {name.split(".")[0]: [json.loads(line) for line in (out / name).read_text().splitlines()]
            for name in SPLIT_FILES}


def sample_datasets():
    return [DatasetSpec(name="arithmetic", path=str(SAMPLES / "arithmetic.jsonl")),
            DatasetSpec(name="chat-math", path=str(SAMPLES / "chat_math.jsonl")),
            DatasetSpec(name="gym-math", path=str(SAMPLES / "gym_math.jsonl"))]


def arithmetic_records(n, start=0):
    return [{"problem": f"What is {i} plus {i + 1}?", "answer": 2 * i + 1} for i in range(start, start + n)]


# -- input shapes --------------------------------------------------------------------------------

def test_documented_key_lists():
    assert PROBLEM_KEYS == ("problem", "question", "prompt")
    assert ANSWER_KEYS == ("expected_answer", "answer", "solution")


@pytest.mark.parametrize("record,problem,answer", [
    ({"problem": "What is 2+2?", "answer": "4"}, "What is 2+2?", "4"),
    ({"question": "What is 2+3?", "expected_answer": 5}, "What is 2+3?", "5"),
    ({"prompt": "Half of 1?", "solution": 0.5}, "Half of 1?", "0.5"),
    ({"problem": "p", "question": "q", "prompt": "r", "solution": "s", "answer": "a", "expected_answer": " e "}, "p", "e"),
    ({"problem": None, "question": "q", "answer": None, "solution": -7}, "q", "-7"),
])
def test_plain_shape(record, problem, answer):
    prompt = to_prompt(record)
    assert prompt.messages == [{"role": "user", "content": problem}]
    assert (prompt.problem, prompt.answer, prompt.record_id) == (problem, answer, None)


def test_messages_shape_leaves_a_final_assistant_message_out_of_the_prompt():
    record = {"id": 7, "answer": "12", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 3 times 4?", "name": "x"},
        {"role": "assistant", "content": "3 * 4 = 12"}]}
    prompt = to_prompt(record)
    assert prompt.messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 3 times 4?"}]
    assert (prompt.problem, prompt.answer, prompt.record_id) == ("What is 3 times 4?", "12", "7")
    multi = {"expected_answer": "2", "messages": [
        {"role": "user", "content": "Pick a number."}, {"role": "assistant", "content": "1"},
        {"role": "user", "content": "Now add one."}]}
    assert [m["role"] for m in to_prompt(multi).messages] == ["user", "assistant", "user"]
    assert to_prompt(multi).problem == "Now add one."


def test_nemo_gym_shape_with_text_parts_and_a_string_input():
    record = {"expected_answer": "9", "responses_create_params": {"temperature": 1.0, "input": [
        {"type": "message", "role": "developer", "content": "Answer in \\boxed{}."},
        {"role": "user", "content": [{"type": "input_text", "text": "What is "}, {"type": "input_text", "text": "4+5?"}]}]}}
    prompt = to_prompt(record)
    assert prompt.messages == [{"role": "developer", "content": "Answer in \\boxed{}."},
                               {"role": "user", "content": "What is 4+5?"}]
    assert (prompt.problem, prompt.answer) == ("What is 4+5?", "9")
    assert to_prompt({"responses_create_params": {"input": "1+1?"}, "answer": 2}).messages == [
        {"role": "user", "content": "1+1?"}]


@pytest.mark.parametrize("record,reason,fragment", [
    ([1, 2], "bad_record", "record is a JSON list, not an object"),
    ({"text": "hi", "answer": "1"}, "no_prompt", "no prompt: none of 'responses_create_params', 'messages'"),
    ({"problem": "  ", "answer": "1"}, "no_prompt", "the problem (last user message) is empty"),
    ({"problem": "2+2?"}, "no_answer", "no answer: none of 'expected_answer', 'answer', 'solution'"),
    ({"problem": "2+2?", "answer": " "}, "no_answer", "'answer' is empty"),
    ({"problem": "2+2?", "answer": [4]}, "bad_answer", "'answer' is a JSON array, not a string or number"),
    ({"problem": "2+2?", "answer": True}, "bad_answer", "'answer' is a JSON boolean"),
    ({"problem": "2+2?", "expected_answer": {"v": 4}}, "bad_answer", "'expected_answer' is a JSON object"),
    ({"problem": "2+2?", "answer": float("nan")}, "bad_answer", "not a finite number"),
    ({"problem": 4, "answer": "4"}, "bad_prompt", "'problem' is a JSON number, not a string"),
    ({"messages": "2+2?", "answer": "4"}, "bad_prompt", "'messages' must be a non-empty list of messages"),
    ({"messages": [], "answer": "4"}, "bad_prompt", "'messages' must be a non-empty list"),
    ({"messages": ["2+2?"], "answer": "4"}, "bad_prompt", "messages[0] is a JSON string, not a message object"),
    ({"messages": [{"role": "robot", "content": "x"}], "answer": "4"}, "bad_prompt", "messages[0] has role 'robot'"),
    ({"messages": [{"role": "user", "content": 4}], "answer": "4"}, "bad_prompt", "messages[0].content is a JSON number"),
    ({"messages": [{"role": "assistant", "content": "4"}], "answer": "4"}, "bad_prompt", "must end with a user message"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}], "answer": "4"},
     "bad_prompt", "must end with a user message"),
    ({"responses_create_params": {"tools": []}, "expected_answer": "4"}, "bad_prompt", "must be an object with an 'input'"),
    ({"responses_create_params": {"input": [{"type": "function_call", "name": "f"}]}, "expected_answer": "4"},
     "bad_prompt", "is a 'function_call' item, not a message"),
    ({"responses_create_params": {"input": [{"role": "user", "content": [{"type": "input_image"}]}]}, "expected_answer": "4"},
     "bad_prompt", "has a part that is not text"),
    ({"problem": "2+2?", "answer": "4", "id": {"n": 1}}, "bad_id", "'id' is a JSON object"),
])
def test_bad_records_have_a_reason_and_a_message(record, reason, fragment):
    from nemotron.data.rl_records import PromptError

    with pytest.raises(PromptError) as err:
        to_prompt(record)
    assert err.value.reason == reason and fragment in str(err.value)


# -- the output ------------------------------------------------------------------------------------

def test_every_line_follows_the_one_schema_and_the_manifest_describes_the_files(tmp_path):
    out = tmp_path / "out"
    outcome = run(out, sample_datasets())
    rows = read_splits(out)
    ids = set()
    for split, lines in rows.items():
        assert lines, split
        for row in lines:
            assert tuple(row) == FIELDS
            assert isinstance(row["id"], str) and row["id"] not in ids
            ids.add(row["id"])
            assert row["source"] in {"arithmetic", "chat-math", "gym-math"} and row["id"].startswith(row["source"] + "/")
            assert row["messages"] and all(set(m) == {"role", "content"} and isinstance(m["content"], str)
                                           for m in row["messages"])
            assert row["messages"][-1] == {"role": "user", "content": row["problem"]}
            assert isinstance(row["expected_answer"], str) and row["expected_answer"].lstrip("-").isdigit()
            assert row["responses_create_params"] == {"input": row["messages"]}
            assert row["extra_env_info"] == {"ground_truth": row["expected_answer"]}
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["schema"] == SCHEMA and manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["fields"] == list(FIELDS) and manifest["seed"] == 1234
    for split, entry in manifest["files"].items():
        data = (out / entry["path"]).read_bytes()
        assert entry["count"] == len(rows[split]) == outcome.splits[split].count
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["num_bytes"] == len(data)
    assert [(s["dataset"], s["records"], s["kept"]) for s in manifest["sources"]] == [
        ("arithmetic", 300, 300), ("chat-math", 20, 20), ("gym-math", 20, 18)]
    for source in manifest["sources"]:
        assert source["sha256"] == hashlib.sha256(Path(source["path"]).read_bytes()).hexdigest()
    assert (manifest["records_read"], manifest["kept"], manifest["duplicates"], manifest["same_prompt"]) == (340, 338, 2, 1)
    assert manifest["splits"]["requested"] == {"val": 0.1, "test": 0.1} and manifest["skipped"] == {}
    assert sorted(p.name for p in out.iterdir()) == sorted([*SPLIT_FILES, MANIFEST])  # no temporary files left


def test_the_shapes_give_the_same_row_for_the_same_prompt(tmp_path):
    rows = [{"problem": "What is 1+1?", "answer": 2},
            {"messages": [{"role": "user", "content": "What is 1+1?"}, {"role": "assistant", "content": "2"}], "answer": "2"},
            {"responses_create_params": {"input": [{"role": "user", "content": "What is 1+1?"}]}, "expected_answer": "2"}]
    for i, record in enumerate(rows):
        write_jsonl(tmp_path / f"in{i}.jsonl", [record])
    outcome = run(tmp_path / "out", [DatasetSpec(name=f"d{i}", path=str(tmp_path / f"in{i}.jsonl")) for i in range(3)],
                  splits={"val": 0, "test": 0})
    assert (outcome.kept, outcome.duplicates) == (1, 2)
    assert read_splits(tmp_path / "out")["train"] == [{
        "id": "d0/0", "source": "d0", "messages": [{"role": "user", "content": "What is 1+1?"}],
        "problem": "What is 1+1?", "expected_answer": "2",
        "responses_create_params": {"input": [{"role": "user", "content": "What is 1+1?"}]},
        "extra_env_info": {"ground_truth": "2"}}]


def test_output_bytes_are_identical_across_runs_and_the_seed_changes_the_split(tmp_path):
    def tree(out):
        return {name: (out / name).read_bytes() for name in (*SPLIT_FILES, MANIFEST)}

    run(tmp_path / "a", sample_datasets())
    run(tmp_path / "b", sample_datasets())
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    run(tmp_path / "c", sample_datasets(), seed=7)
    assert read_splits(tmp_path / "c")["val"] != read_splits(tmp_path / "a")["val"]


def test_a_prompts_split_does_not_depend_on_input_order(tmp_path):
    records = arithmetic_records(200)
    write_jsonl(tmp_path / "fwd.jsonl", records)
    write_jsonl(tmp_path / "rev.jsonl", records[::-1])
    run(tmp_path / "a", [DatasetSpec(name="d", path=str(tmp_path / "fwd.jsonl"))])
    run(tmp_path / "b", [DatasetSpec(name="d", path=str(tmp_path / "rev.jsonl"))])
    for split in ("train", "val", "test"):
        a, b = read_splits(tmp_path / "a")[split], read_splits(tmp_path / "b")[split]
        assert sorted(r["problem"] for r in a) == sorted(r["problem"] for r in b)


# -- splits and duplicates --------------------------------------------------------------------------

def test_no_prompt_lands_in_two_splits_and_duplicates_are_counted(tmp_path):
    base = arithmetic_records(100)
    variants = []
    for i, r in enumerate(base[:60]):
        variants.append(dict(r))  # exact duplicate: dropped
        if i % 2:  # the same prompt spelled differently, another answer form: kept, same split
            variants.append({"question": "  " + r["problem"].upper().replace(" ", "\t "), "expected_answer": str(r["answer"])})
    write_jsonl(tmp_path / "a.jsonl", base)
    write_jsonl(tmp_path / "b.jsonl", variants)
    outcome = run(tmp_path / "out", [DatasetSpec(name="a", path=str(tmp_path / "a.jsonl")),
                                     DatasetSpec(name="b", path=str(tmp_path / "b.jsonl"))],
                  splits={"val": 0.2, "test": 0.2})
    assert (outcome.records_read, outcome.duplicates, outcome.same_prompt, outcome.kept) == (190, 60, 30, 130)
    seen = {}
    for split, rows in read_splits(tmp_path / "out").items():
        for row in rows:
            assert seen.setdefault(prompt_identity(row["problem"]), split) == split
    assert len(seen) == 100
    assert {s: f.prompts for s, f in outcome.splits.items()} == {"train": 60, "val": 20, "test": 20}
    assert sum(f.count for f in outcome.splits.values()) == 130


@pytest.mark.parametrize("splits,expected", [
    ({"val": 7, "test": 5}, {"train": 88, "val": 7, "test": 5}),
    ({"train": None, "val": 7, "test": 5}, {"train": 88, "val": 7, "test": 5}),
    ({"val": 0, "test": 99}, {"train": 1, "val": 0, "test": 99}),  # a split of ratio 0 may stay empty
    ({"test": 3}, {"train": 97, "val": 0, "test": 3}),
    ({"val": 0.1, "test": 0.05}, {"train": 85, "val": 10, "test": 5}),
    ({"train": None, "val": 0.1, "test": 0.1}, {"train": 80, "val": 10, "test": 10}),
    ({"train": 0.8, "val": 0.1, "test": 0.1}, {"train": 80, "val": 10, "test": 10}),
    ({"train": 8.0, "val": 1.0, "test": 1.0}, {"train": 80, "val": 10, "test": 10}),
    ({"val": 12, "test": 0.1}, {"train": 78, "val": 12, "test": 10}),
])
def test_counts_and_ratios(tmp_path, splits, expected):
    write_jsonl(tmp_path / "in.jsonl", arithmetic_records(100))
    outcome = run(tmp_path / "out", [DatasetSpec(name="d", path=str(tmp_path / "in.jsonl"))], splits=splits)
    assert {s: f.count for s, f in outcome.splits.items()} == expected
    assert {s: len(r) for s, r in read_splits(tmp_path / "out").items()} == expected


def test_fractions_and_the_same_ratios_with_train_give_the_same_files(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", arithmetic_records(100))
    spec = [DatasetSpec(name="d", path=str(tmp_path / "in.jsonl"))]
    run(tmp_path / "a", spec, splits={"val": 0.1, "test": 0.1})
    run(tmp_path / "b", spec, splits={"train": 0.8, "val": 0.1, "test": 0.1})
    assert all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in SPLIT_FILES)


@pytest.mark.parametrize("splits,fragment", [
    ({"valid": 0.1}, "unknown split(s) ['valid'] (use train, val, test)"),
    ({"val": -1}, "data_prep.splits.val must be a non-negative number"),
    ({"val": True}, "data_prep.splits.val must be a non-negative number"),
    ({"val": None}, "data_prep.splits.val must be a non-negative number"),
    ({"val": "10"}, "data_prep.splits.val must be a non-negative number"),
    ({"train": 90, "val": 5, "test": 5}, "with train given, every split must be a ratio"),
    ({"train": 0.9, "val": 20}, "with train given, every split must be a ratio"),
    ({"val": 1.5}, "data_prep.splits.val=1.5 is a fraction above 1"),
    ({"val": 0.6, "test": 0.6}, "val + test fractions exceed 1"),
    ({"train": 0.0, "val": 0.0}, "must not be all zero"),
    ([0.9, 0.1], "must be a mapping"),
])
def test_bad_split_specs_are_config_errors(splits, fragment):
    with pytest.raises(ConfigError) as err:
        split_spec(splits)
    assert fragment in str(err.value)


def test_counts_beyond_the_distinct_prompts_are_a_config_error_and_leave_nothing(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", arithmetic_records(30))
    with pytest.raises(ConfigError, match="asks for 20 val \\+ 20 test prompts, but the data holds only 30"):
        run(tmp_path / "out", [DatasetSpec(name="d", path=str(tmp_path / "in.jsonl"))], splits={"val": 20, "test": 20})
    assert not (tmp_path / "out").exists()


def test_a_pinned_dataset_takes_its_prompts_and_their_twins_elsewhere(tmp_path):
    write_jsonl(tmp_path / "pool.jsonl", arithmetic_records(50))
    write_jsonl(tmp_path / "eval.jsonl", [{"problem": r["problem"].lower(), "answer": r["answer"]}
                                          for r in arithmetic_records(5, start=10)])
    outcome = run(tmp_path / "out", [DatasetSpec(name="pool", path=str(tmp_path / "pool.jsonl")),
                                     DatasetSpec(name="eval", path=str(tmp_path / "eval.jsonl"), split="test")],
                  splits={"val": 5, "test": 0})
    rows = read_splits(tmp_path / "out")
    assert outcome.same_prompt == 5 and len(rows["test"]) == 10 and len(rows["val"]) == 5
    pinned = {prompt_identity(r["problem"]) for r in arithmetic_records(5, start=10)}
    assert {prompt_identity(r["problem"]) for r in rows["test"]} == pinned
    assert [s["split"] for s in outcome.manifest["sources"]] == [None, "test"]


def test_ids_come_from_the_record_or_its_position(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"problem": "a?", "answer": 1}, {"id": "x-1", "problem": "b?", "answer": 2},
                                        "", {"id": 5, "problem": "c?", "answer": 3}, {"problem": "d?", "answer": 4}])
    run(tmp_path / "out", [DatasetSpec(name="d", path=str(tmp_path / "in.jsonl"))], splits={"val": 0, "test": 0})
    assert [r["id"] for r in read_splits(tmp_path / "out")["train"]] == ["d/0", "d/x-1", "d/5", "d/3"]


# -- bad input -------------------------------------------------------------------------------------

BAD_LINES = {
    "malformed_json": ('{"problem": "x?", ', "malformed JSON"),
    "bad_record": ("[1, 2]", "record is a JSON list"),
    "no_prompt": ('{"text": "x?", "answer": 1}', "no prompt"),
    "no_answer": ('{"problem": "x?"}', "no answer"),
    "bad_answer": ('{"problem": "x?", "answer": [1]}', "'answer' is a JSON array"),
    "bad_prompt": ('{"messages": [{"role": "user", "content": 5}], "answer": 1}', "messages[0].content is a JSON number"),
    "duplicate_id": ('{"id": "a", "problem": "other?", "answer": 1}', "id 'd/a' is used by an earlier record"),
}


@pytest.mark.parametrize("reason", sorted(BAD_LINES))
def test_a_bad_record_names_file_and_line(tmp_path, reason):
    line, fragment = BAD_LINES[reason]
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "problem": "1+1?", "answer": 2}, "", line,
                                               {"problem": "2+2?", "answer": 4}])
    with pytest.raises(DataError) as err:
        run(tmp_path / "out", [DatasetSpec(name="d", path=str(path))])
    assert str(err.value).startswith(f"{path}:3: ") and fragment in str(err.value)
    assert "on_error=skip" in err.value.hint
    assert not (tmp_path / "out").exists()


def test_skip_counts_every_bad_record_by_reason(tmp_path):
    lines = [json.dumps({"id": "a", "problem": "1+1?", "answer": 2})]
    for reason, (line, _) in BAD_LINES.items():
        lines += [line] * (2 if reason == "no_answer" else 1)
    lines.append(json.dumps({"problem": "2+2?", "answer": 4}))
    path = write_jsonl(tmp_path / "in.jsonl", lines)
    outcome = run(tmp_path / "out", [DatasetSpec(name="d", path=str(path))], on_error="skip", splits={"val": 0, "test": 0})
    assert outcome.skipped == {"bad_answer": 1, "bad_prompt": 1, "bad_record": 1, "duplicate_id": 1,
                               "malformed_json": 1, "no_answer": 2, "no_prompt": 1}
    assert outcome.kept == 2 and outcome.records_read == 9  # a malformed line is no record
    assert outcome.manifest["skipped"] == outcome.skipped


def test_nothing_usable_is_a_data_error(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", ['{"problem": "x?"}'])
    with pytest.raises(DataError, match="no usable prompts in 1 file"):
        run(tmp_path / "out", [DatasetSpec(name="d", path=str(path))], on_error="skip")


def test_nothing_to_train_on_or_an_empty_asked_split_is_a_data_error(tmp_path):
    import re

    once = write_jsonl(tmp_path / "once.jsonl", arithmetic_records(1) * 2)  # one prompt after de-duplication
    with pytest.raises(DataError, match=re.escape(f"the val split of 1 distinct prompts of {once} is empty, though "
                                                  "data_prep.splits.val=0.1 asks for it")):
        run(tmp_path / "out", [DatasetSpec(name="d", path=str(once))])
    assert not (tmp_path / "out").exists()
    many = write_jsonl(tmp_path / "many.jsonl", arithmetic_records(100))
    with pytest.raises(DataError, match="nothing to train on: the train split of 100 distinct prompts of"):
        run(tmp_path / "out", [DatasetSpec(name="d", path=str(many))], splits={"val": 0, "test": 100})
    # Splits asked for nothing may stay empty, and a pinned dataset is not drawn from.
    assert run(tmp_path / "a", [DatasetSpec(name="d", path=str(once))], splits={"val": 0, "test": 0}).kept == 1
    assert run(tmp_path / "b", [DatasetSpec(name="d", path=str(once), split="train")]).kept == 1


def test_bad_settings_are_config_errors(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", arithmetic_records(3))
    spec = DatasetSpec(name="d", path=str(path))
    from nemo_runspec.schema import validate
    from nemotron.schemas.data_prep import RLPrepConfig

    prep = {"blend": [{"name": "d", "path": str(path)}], "splits": {"val": 0.1}, "seed": 1, "output_root": "data"}
    with pytest.raises(ConfigError, match="data_prep.on_error must be one of 'fail', 'skip', got 'ignore'"):
        validate(RLPrepConfig, {**prep, "on_error": "ignore"}, "data_prep")
    with pytest.raises(ConfigError, match="two datasets with the same name"):
        run(tmp_path / "out", [spec, spec])


def test_parquet_input_and_row_locations(tmp_path):
    table = pa.table({"question": ["What is 1+2?", "What is 2+5?", None],
                      "expected_answer": ["3", "7", "1"]})
    pq.write_table(table, tmp_path / "in.parquet")
    chat = pa.table({"messages": [[{"role": "user", "content": "What is 9-4?"}]], "answer": [5]})
    pq.write_table(chat, tmp_path / "chat.parquet")
    specs = [DatasetSpec(name="pq", path=str(tmp_path / "in.parquet")), DatasetSpec(name="chat", path=str(tmp_path / "chat.parquet"))]
    with pytest.raises(DataError, match=f"{tmp_path / 'in.parquet'}:row 3: no prompt"):
        run(tmp_path / "out", specs)
    outcome = run(tmp_path / "out", specs, on_error="skip", splits={"val": 0, "test": 0})
    rows = read_splits(tmp_path / "out")["train"]
    assert [(r["problem"], r["expected_answer"]) for r in rows] == [("What is 1+2?", "3"), ("What is 2+5?", "7"),
                                                                    ("What is 9-4?", "5")]
    assert outcome.skipped == {"no_prompt": 1}


def test_a_dataset_artifact_as_source_is_pinned(tracking, tmp_path):
    from nemo_runspec.artifacts import Artifact, log_artifact

    class RawPromptsArtifact(Artifact):
        num_files: int

    raw = tmp_path / "raw"
    raw.mkdir()
    write_jsonl(raw / "prompts.jsonl", arithmetic_records(10))
    log_artifact(RawPromptsArtifact(path=raw, num_files=1), tracking, name="raw-prompts")
    outcome = run(tmp_path / "out", [DatasetSpec(name="raw", path="art://raw-prompts:latest", glob="*.jsonl")],
                  resolve=tracking.resolve, splits={"val": 1, "test": 1})
    assert [s["uri"] for s in outcome.manifest["sources"]] == ["art://raw-prompts:v1"]
    assert outcome.kept == 10
