"""Every test runs in its own working directory with its own registry and no env.toml."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    from nemo_runspec.artifacts import reset_artifact_tracking

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for var in ("NEMOTRON_ENV_FILE", "NEMOTRON_ARTIFACTS_ROOT", "NEMOTRON_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    reset_artifact_tracking()
    yield work
    reset_artifact_tracking()


@pytest.fixture
def tracking(tmp_path):
    from nemo_runspec.artifacts import setup_artifact_tracking

    return setup_artifact_tracking({"root": str(tmp_path / "registry")})


@pytest.fixture(scope="session")
def slurm_cluster():
    """The single-node SLURM cluster on localhost (scripts/slurm-cluster.sh; `.ci/run` starts it
    before the tests, this starts it when a developer runs the tests without it)."""
    import subprocess

    from helpers import REPO

    started = subprocess.run([str(REPO / "scripts" / "slurm-cluster.sh"), "start"], capture_output=True, text=True,
                             timeout=600)
    if started.returncode != 0:
        pytest.fail(f"the local SLURM cluster did not start:\n{started.stdout[-2000:]}\n{started.stderr[-2000:]}")
    return "cpu"


@pytest.fixture(scope="session")
def default_pipe(tmp_path_factory):
    """`nemotron nano3 pipe` on its default (tiny) settings, once per session, in a directory of
    its own: the learning test reads its evaluations, the pipe test its lineage and reruns."""
    from helpers import run_cli

    work = tmp_path_factory.mktemp("default-pipe")
    done = run_cli("nano3", "pipe", cwd=work, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return work, done
