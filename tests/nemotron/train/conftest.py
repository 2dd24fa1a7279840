"""Fixtures of the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import run_cli


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A work directory whose registry holds the tiny pretraining data (one prep per module)."""
    work = tmp_path_factory.mktemp("prepared")
    done = run_cli("nano3", "data", "prep", "pretrain", cwd=work)
    assert done.returncode == 0, done.stderr[-2000:]
    return work
