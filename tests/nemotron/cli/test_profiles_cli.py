"""--run/--batch PROFILE before anything reaches SLURM: local profiles, and the errors that
must stop a submission (no cluster needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_cli

ENV = """
[here]
executor = "local"

[queue]
executor = "slurm"
partition = "cpu"
job_dir = "{jobs}"
"""


@pytest.fixture
def env(isolated: Path) -> Path:
    (isolated / "env.toml").write_text(ENV.format(jobs=isolated / "jobs"))
    return isolated


def test_a_local_profile_runs_in_this_process(env):
    done = run_cli("nano3", "data", "prep", "rl", "--run", "here", cwd=env)
    assert done.returncode == 0, done.stderr
    assert "logged nano3-rl-data-tiny:v1" in done.stdout and "submitted" not in done.stdout
    assert not (env / "jobs").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--run", "nope"], "profile 'nope' is not defined (profiles: here, queue)"),
    (["--run", "queue", "--batch", "queue"], "--run and --batch exclude each other"),
    (["-m", "--batch", "queue", "data_prep.seed=1,2", "data_prep.no_such_key=1"], "cannot compose config"),
    (["--run", "queue", "data_prep.seed=1,2"], "a sweep override (a=1,2) needs -m/--multirun"),
    (["--run", "queue", "data_prep.no_such_key=1"], "cannot compose config"),
    (["launcher=slurm"], "launcher=slurm needs launcher.profile=NAME"),
    (["launcher=slurm", "launcher.profile=nope"], "profile 'nope' is not defined"),
])
def test_bad_submissions_fail_in_one_line_and_submit_nothing(env, args, message):
    done = run_cli("nano3", "data", "prep", "rl", *args, cwd=env)
    assert done.returncode == 1
    error = done.stderr.strip().splitlines()
    assert len(error) == 2 and message in error[0] and error[1].startswith("hint: "), done.stderr
    assert not (env / "jobs").exists()


def test_pipe_to_an_unknown_step_is_an_error(env):
    done = run_cli("nano3", "pipe", "--run", "queue", "--to", "nope", cwd=env)
    assert done.returncode == 1 and "--to nope: no such step" in done.stderr
    assert not (env / "jobs").exists()


def test_jobs_status_lists_nothing_when_nothing_was_submitted(env):
    done = run_cli("jobs", "status", cwd=env)
    assert done.returncode == 0, done.stderr
    missing = run_cli("jobs", "logs", "999", cwd=env)
    assert missing.returncode == 1 and "no job 999 was submitted from here" in missing.stderr
