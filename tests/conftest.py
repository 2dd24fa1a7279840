"""Every test runs in its own working directory with its own registry and no env.toml."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    import nemo_runspec.artifacts.tracking as tracking

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for var in ("NEMOTRON_ENV_FILE", "NEMOTRON_ARTIFACTS_ROOT", "NEMOTRON_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(tracking, "_active", None)
    yield work


@pytest.fixture
def tracking(tmp_path):
    from nemo_runspec.artifacts import setup_artifact_tracking

    return setup_artifact_tracking({"root": str(tmp_path / "registry")})
