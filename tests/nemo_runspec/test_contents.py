"""Content manifests: what an artifact's files held at publish, and how they differ since."""

from __future__ import annotations

import hashlib
import os

import pytest

from nemo_runspec import contents
from nemo_runspec.errors import DataError


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "artifact"
    (root / "shards").mkdir(parents=True)
    (root / "shards" / "a.bin").write_bytes(b"a" * 1000)
    (root / "shards" / "b.idx").write_bytes(b"index")
    (root / "blend.json").write_text("{}")
    (root / "metadata.json").write_text("{\"record\": 1}")
    return root


def test_the_manifest_lists_every_file_with_size_and_blake2b_and_one_root(tree):
    manifest = contents.manifest_of(tree, exclude=("metadata.json",))
    assert [e.path for e in manifest.files] == ["blend.json", "shards/a.bin", "shards/b.idx"]
    entry = manifest.files[1]
    assert entry.size == 1000 and entry.digest == hashlib.blake2b(b"a" * 1000, digest_size=32).hexdigest()
    assert manifest.total_bytes == 1000 + 5 + 2 and manifest.algorithm == "blake2b-256"
    assert manifest.root == contents.root_digest(manifest.files)
    (tree / "metadata.json").write_text("rewritten after publish")      # excluded: not part of it
    assert contents.manifest_of(tree, exclude=("metadata.json",)).root == manifest.root
    os.utime(tree / "blend.json", ns=(1, 1))                                # the root is about bytes, not times
    assert contents.manifest_of(tree, exclude=("metadata.json",)).root == manifest.root


def test_every_kind_of_difference_is_named(tree):
    manifest = contents.manifest_of(tree, exclude=("metadata.json",))
    assert contents.compare(manifest, tree, exclude=("metadata.json",)) == []
    (tree / "shards" / "b.idx").unlink()
    (tree / "shards" / "c.idx").write_text("new")
    (tree / "blend.json").write_text("{\"x\": 1}")
    data = bytearray((tree / "shards" / "a.bin").read_bytes())
    data[500] ^= 1
    (tree / "shards" / "a.bin").write_bytes(bytes(data))
    found = contents.compare(manifest, tree, exclude=("metadata.json",))
    assert [(d.kind, d.path) for d in found] == [("missing", "shards/b.idx"), ("extra", "shards/c.idx"),
                                                ("size", "blend.json"), ("digest", "shards/a.bin")]
    assert str(found[2]) == "blend.json: size changed (2 -> 8 bytes)" and str(found[3]) == "shards/a.bin: content changed"


def test_the_quick_check_reads_what_was_touched_and_the_full_check_everything(tree):
    manifest = contents.manifest_of(tree)
    target = tree / "shards" / "a.bin"
    stat = target.stat()
    target.write_bytes(b"b" + b"a" * 999)                                 # same size, new mtime
    assert [d.kind for d in contents.compare(manifest, tree, contents.QUICK)] == ["digest"]
    assert contents.compare(manifest, tree, contents.SIZES) == []
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))             # a tamperer who restores the mtime
    assert contents.compare(manifest, tree, contents.QUICK) == []
    assert [d.kind for d in contents.compare(manifest, tree, contents.FULL)] == ["digest"]


def test_links_are_followed_cycles_walked_once_and_a_dangling_link_is_missing(tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    (user / "data.jsonl").write_text("{}\n")
    artifact = tmp_path / "import"
    artifact.mkdir()
    (artifact / "train.jsonl").symlink_to(user / "data.jsonl")
    (artifact / "loop").symlink_to(artifact)
    manifest = contents.manifest_of(artifact)
    assert [(e.path, e.size) for e in manifest.files] == [("train.jsonl", 3)]
    (user / "data.jsonl").write_text("{\"changed\": 1}\n")                # the user's file changes under the link
    assert [d.kind for d in contents.compare(manifest, artifact)] == ["size"]
    (user / "data.jsonl").unlink()
    assert [(d.kind, d.path) for d in contents.compare(manifest, artifact)] == [("missing", "train.jsonl")]
    with pytest.raises(DataError, match="a link to a missing file"):
        contents.manifest_of(artifact)


def test_a_one_file_artifact_and_a_vanished_path(tmp_path):
    file = tmp_path / "tokenizer.json"
    file.write_text("{}")
    manifest = contents.manifest_of(file)
    assert [e.path for e in manifest.files] == ["tokenizer.json"]
    file.write_text("{ }")
    assert [d.kind for d in contents.compare(manifest, file)] == ["size"]
    file.unlink()
    assert [d.kind for d in contents.compare(manifest, file)] == ["missing"]


def test_the_thread_pool_digests_as_one_thread_does(tmp_path, monkeypatch):
    for index in range(6):
        (tmp_path / f"part-{index}.bin").write_bytes(os.urandom(3 << 20))
    pooled = contents.manifest_of(tmp_path)                               # 18 MiB: above the pool's threshold
    monkeypatch.setattr(contents, "_POOL_MIN_BYTES", 1 << 40)
    assert contents.manifest_of(tmp_path) == pooled
