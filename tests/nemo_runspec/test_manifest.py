import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from nemo_runspec.errors import ArtifactNotFoundError, CorruptRecordError, InvalidNameError, TypeMismatchError
from nemo_runspec.refs import ArtifactRef
from nemo_runspec.registry import ArtifactRecord, ManifestRegistry


def draft(name="data", type_="DataArtifact", **kw):
    return ArtifactRecord(name=name, type=type_, path="/x", created_at=datetime.now(timezone.utc), **kw)


@pytest.fixture
def registry(tmp_path):
    return ManifestRegistry(tmp_path / "reg")


def test_versions_count_up_from_one_and_latest_is_the_highest(registry):
    records = [registry.publish(draft(fields={"i": i})) for i in range(3)]
    assert [r.version for r in records] == [1, 2, 3]
    assert registry.resolve(ArtifactRef("data")).version == 3
    assert registry.resolve(ArtifactRef("data", "v2")).fields == {"i": 1}


def test_published_version_is_immutable_on_disk(registry):
    registry.publish(draft(fields={"a": 1}))
    path = registry.root / "data" / "versions" / "v1.json"
    before = path.read_bytes()
    registry.publish(draft(fields={"a": 2}))
    assert path.read_bytes() == before


def test_aliases_are_named_and_movable(registry):
    for _ in range(3):
        registry.publish(draft())
    registry.set_alias("data", "production", 1)
    registry.set_alias("data", "best", 2)
    assert registry.resolve(ArtifactRef("data", "production")).version == 1
    registry.set_alias("data", "production", 3)
    assert registry.resolve(ArtifactRef("data", "production")).version == 3
    assert registry.aliases("data") == {"best": 2, "production": 3}


def test_alias_to_missing_version_is_refused(registry):
    registry.publish(draft())
    with pytest.raises(ArtifactNotFoundError, match="no version v7"):
        registry.set_alias("data", "best", 7)
    assert registry.aliases("data") == {}


def test_unknown_name_version_and_alias_say_what_exists(registry):
    registry.publish(draft())
    registry.publish(draft())
    with pytest.raises(ArtifactNotFoundError, match="no artifact named 'nope'.*") as err:
        registry.resolve(ArtifactRef("nope"))
    assert "data" in err.value.hint
    with pytest.raises(ArtifactNotFoundError, match=r"no version v5 \(versions: v1..v2\)"):
        registry.resolve(ArtifactRef("data", "v5"))
    with pytest.raises(ArtifactNotFoundError, match="no version or alias 'best'"):
        registry.resolve(ArtifactRef("data", "best"))


def test_name_bound_to_one_type(registry):
    registry.publish(draft(type_="DataArtifact"))
    with pytest.raises(TypeMismatchError, match="bound to type DataArtifact"):
        registry.publish(draft(type_="ModelArtifact"))
    assert registry.latest_version("data") == 1


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".staging"])
def test_names_cannot_write_outside_the_root(registry, tmp_path, name):
    with pytest.raises(InvalidNameError):
        registry.publish(draft(name=name))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]  # nothing was created anywhere


def test_truncated_manifest_is_a_one_line_error_naming_the_file(registry):
    registry.publish(draft())
    path = registry.root / "data" / "versions" / "v1.json"
    path.write_text(path.read_text()[:40])
    with pytest.raises(CorruptRecordError) as err:
        registry.resolve(ArtifactRef("data", "v1"))
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert registry.verify()


def test_corrupt_type_binding_and_alias_are_reported(registry):
    registry.publish(draft())
    registry.set_alias("data", "best", 1)
    (registry.root / "data" / "aliases" / "best.json").write_text("{")
    with pytest.raises(CorruptRecordError, match="corrupt alias"):
        registry.resolve(ArtifactRef("data", "best"))
    (registry.root / "data" / "type.json").write_text("not json")
    with pytest.raises(CorruptRecordError, match="type.json"):
        registry.publish(draft())


def test_stale_or_missing_latest_hint_never_gives_a_wrong_latest(registry):
    for _ in range(4):
        registry.publish(draft())
    hint = registry.root / "data" / "LATEST"
    hint.write_text("2")  # as left by a writer killed before it raised the hint
    assert registry.resolve(ArtifactRef("data")).version == 4
    hint.unlink()
    assert registry.resolve(ArtifactRef("data")).version == 4
    hint.write_text("99")  # a hint ahead of reality (hand-edited) falls back to a scan
    assert registry.resolve(ArtifactRef("data")).version == 4
    assert registry.publish(draft()).version == 5


def test_resolving_latest_and_vN_never_lists_directories(registry, monkeypatch):
    for _ in range(200):
        registry.publish(draft())
    registry.set_alias("data", "best", 150)

    def forbidden(*args, **kwargs):
        raise AssertionError("directory listing on the resolve path")

    monkeypatch.setattr(os, "scandir", forbidden)
    monkeypatch.setattr(os, "listdir", forbidden)
    monkeypatch.setattr(Path, "iterdir", forbidden)
    monkeypatch.setattr(Path, "glob", forbidden)
    assert registry.resolve(ArtifactRef("data")).version == 200
    assert registry.resolve(ArtifactRef("data", "v37")).version == 37
    assert registry.resolve(ArtifactRef("data", "best")).version == 150


def test_verify_finds_a_gap(registry):
    for _ in range(3):
        registry.publish(draft())
    (registry.root / "data" / "versions" / "v2.json").unlink()
    assert any("not v1..v" in p for p in registry.verify())


def test_record_on_disk_is_plain_json(registry):
    registry.publish(draft(inputs=["art://other:v1"], fields={"n": 3}, metadata={"k": [1, 2]}))
    data = json.loads((registry.root / "data" / "versions" / "v1.json").read_text())
    assert data["name"] == "data" and data["version"] == 1 and data["schema"] == 1
    assert data["inputs"] == ["art://other:v1"] and data["fields"] == {"n": 3}


def test_empty_or_missing_root_reads_as_empty(tmp_path):
    registry = ManifestRegistry(tmp_path / "missing")
    assert registry.names() == [] and registry.verify() == []
    with pytest.raises(ArtifactNotFoundError, match="no artifact named"):
        registry.resolve(ArtifactRef("x"))
    assert not (tmp_path / "missing").exists()
