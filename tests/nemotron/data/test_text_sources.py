import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nemo_runspec.errors import ConfigError, DataError
from nemotron.data.bad_records import SkipCounter
from nemotron.data.text_sources import DatasetSpec, iter_documents, plan_units, resolve_files


def write_jsonl(path, texts):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def documents(units, on_error="fail"):
    skipped = SkipCounter()
    docs = [d for u in units for s in u.segments for d in iter_documents(s, u.dataset.text_field, on_error, skipped)]
    return docs, skipped


@pytest.mark.parametrize("shards", [1, 2, 3, 7, 50])
def test_byte_range_units_read_every_line_exactly_once(tmp_path, shards):
    texts = [f"document {i} " + "x" * (i * 7 % 90) for i in range(200)]
    write_jsonl(tmp_path / "a.jsonl", texts[:120])
    write_jsonl(tmp_path / "b.jsonl", texts[120:])
    spec = DatasetSpec(name="d", path=str(tmp_path / "*.jsonl"))
    units = plan_units(spec, resolve_files(spec), shards)
    assert len(units) == min(shards, len(units)) and all(u.segments for u in units)
    assert documents(units)[0] == texts


def test_every_format_reads_its_documents(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", ["one", "two"])
    with gzip.open(tmp_path / "b.jsonl.gz", "wt") as f:
        f.write(json.dumps({"text": "three"}) + "\n")
    pq.write_table(pa.table({"text": ["four", None, "five"]}), tmp_path / "c.parquet")
    (tmp_path / "d.txt").write_text("six\nstill six")
    (tmp_path / "notes.md").write_text("ignored by the glob")
    spec = DatasetSpec(name="d", path=str(tmp_path / "*"))
    docs, skipped = documents(plan_units(spec, resolve_files(spec), 2))
    assert docs == ["one", "two", "three", "four", "five", "six\nstill six"]
    assert skipped == {"empty_document": 1}


def test_custom_text_field(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"content": "hello"}\n')
    spec = DatasetSpec(name="d", path=str(tmp_path / "a.jsonl"), text_field="content")
    assert documents(plan_units(spec, resolve_files(spec), 1))[0] == ["hello"]


def test_path_that_matches_nothing(tmp_path):
    with pytest.raises(ConfigError, match="matches no readable files"):
        resolve_files(DatasetSpec(name="d", path=str(tmp_path / "missing-*.jsonl")))
    with pytest.raises(ConfigError, match="matches no readable files"):
        resolve_files(DatasetSpec(name="d", path=str(tmp_path / "missing.jsonl")))


def test_unsupported_file_type(tmp_path):
    (tmp_path / "a.csv").write_text("text\nx\n")
    with pytest.raises(ConfigError, match="unsupported file type"):
        resolve_files(DatasetSpec(name="d", path=str(tmp_path / "a.csv")))


BAD_LINES = [
    (b'{"text": "ok"}\n{"text": "broken"\n', "malformed JSON", "malformed_json"),
    (b'{"text": "ok"}\n{"body": "x"}\n', "no 'text' field", "missing_text_field"),
    (b'{"text": "ok"}\n{"text": "caf\xe9"}\n', "not UTF-8", "not_utf8"),
    (b'{"text": "ok"}\n{"text": 3}\n', "not a string", "bad_record"),
    (b'{"text": "ok"}\n[1, 2]\n', "not an object", "bad_record"),
]


@pytest.mark.parametrize("body,message,reason", BAD_LINES)
def test_bad_records_name_file_and_line_or_are_counted(tmp_path, body, message, reason):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"text": "first"}\n' * 50 + body)
    spec = DatasetSpec(name="d", path=str(path))
    units = plan_units(spec, resolve_files(spec), 4)  # the bad line sits in a later unit
    with pytest.raises(DataError) as err:
        documents(units)
    assert str(err.value).startswith(f"{path}:52: ") and message in str(err.value)
    docs, skipped = documents(units, on_error="skip")
    assert len(docs) == 51 and skipped == {reason: 1}


def test_bad_record_in_gzip_and_txt(tmp_path):
    with gzip.open(tmp_path / "a.jsonl.gz", "wb") as f:
        f.write(b'{"text": "a"}\n\n{oops}\n')
    spec = DatasetSpec(name="d", path=str(tmp_path / "a.jsonl.gz"))
    with pytest.raises(DataError, match=r"a.jsonl.gz:3: malformed JSON"):
        documents(plan_units(spec, resolve_files(spec), 1))
    (tmp_path / "b.txt").write_bytes(b"line one\nline \xff two\n")
    spec = DatasetSpec(name="t", path=str(tmp_path / "b.txt"))
    with pytest.raises(DataError, match=r"b.txt:2: not UTF-8"):
        documents(plan_units(spec, resolve_files(spec), 1))


@pytest.mark.parametrize("damage,reason", [
    (lambda data: data[:10] + b"\xff" * 20 + data[30:], "Error -3 while decompressing data"),
    (lambda data: data[: len(data) // 2], "Compressed file ended before the end-of-stream marker"),
])
def test_a_damaged_gzip_is_a_data_error_naming_the_file(tmp_path, damage, reason):
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(damage(gzip.compress(b'{"text": "a"}\n' * 100)))
    spec = DatasetSpec(name="d", path=str(path))
    with pytest.raises(DataError, match=f"^{path}:1: cannot read gzip stream: {reason}"):
        documents(plan_units(spec, resolve_files(spec), 1))


def test_empty_documents_are_skipped_and_counted(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", ["x", "", "   ", "y"])
    spec = DatasetSpec(name="d", path=str(tmp_path / "a.jsonl"))
    docs, skipped = documents(plan_units(spec, resolve_files(spec), 1))
    assert docs == ["x", "y"] and skipped == {"empty_document": 2}


def test_parquet_without_the_text_column(tmp_path):
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "a.parquet")
    spec = DatasetSpec(name="d", path=str(tmp_path / "a.parquet"))
    with pytest.raises(DataError, match="no column 'text' \\(columns: body\\)"):
        documents(plan_units(spec, resolve_files(spec), 1))


@pytest.mark.parametrize("entry,field", [
    ({"name": "d", "path": "x", "weight": -1}, "weight"),
    ({"name": "a/b", "path": "x"}, "name"),
    ({"name": "d", "path": "x", "split": "dev"}, "split"),
    ({"name": "d", "path": "x", "colour": 1}, "colour"),
])
def test_dataset_spec_validation(entry, field):
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as err:
        DatasetSpec.model_validate(entry)
    assert err.value.errors()[0]["loc"][0] == field
