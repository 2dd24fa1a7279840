"""Atomic writes: the whole new content or the old, nothing left behind, the mode a plain open gives."""

import os
import threading

import pytest

from nemo_runspec import atomic


def test_writes_replace_the_whole_file_and_leave_no_temporary(tmp_path):
    target = tmp_path / "sub" / "record.json"
    atomic.write_json(target, {"a": 1})
    assert target.read_text() == '{\n "a": 1\n}\n'
    atomic.write_text(target, "new")
    assert target.read_text() == "new"
    assert os.listdir(target.parent) == ["record.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "out" / "shard.bin"
    atomic.write_bytes(target, b"old")
    with pytest.raises(RuntimeError):
        with atomic.AtomicFile(target) as file:
            file.write(b"half of the new")
            raise RuntimeError("killed")
    with pytest.raises(RuntimeError):
        with atomic.replacing(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"old" and os.listdir(target.parent) == ["shard.bin"]


def test_the_file_gets_the_umask_mode(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic.write_text(tmp_path / "x", "x")
    finally:
        os.umask(umask)
    assert (tmp_path / "x").stat().st_mode & 0o777 == 0o644


def test_concurrent_writers_of_one_target_never_collide(tmp_path):
    target = tmp_path / "out" / "LATEST"
    errors = []

    def write(n):
        try:
            for _ in range(50):
                atomic.write_text(target, str(n))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and target.read_text() in {str(n) for n in range(8)}
    assert os.listdir(target.parent) == ["LATEST"]
