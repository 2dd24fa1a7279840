"""Who and what produced an artifact: host, user, run id, and the git state of the code."""

from __future__ import annotations

import functools
import getpass
import os
import socket
import subprocess
import uuid
from pathlib import Path

from pydantic import BaseModel

# Environment variables that identify a run, most specific first.
_RUN_ID_VARS = ("NEMOTRON_RUN_ID", "SLURM_JOB_ID", "TORCHELASTIC_RUN_ID")


class Producer(BaseModel):
    host: str
    user: str
    pid: int
    run_id: str


class CodeVersion(BaseModel):
    git_sha: str
    dirty: bool
    repo: str


@functools.cache
def _process_run_id() -> str:
    for var in _RUN_ID_VARS:
        if os.environ.get(var):
            return os.environ[var]
    return uuid.uuid4().hex[:12]


def current_producer() -> Producer:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return Producer(host=socket.gethostname(), user=user, pid=os.getpid(), run_id=_process_run_id())


def current_code_version() -> CodeVersion | None:
    """Git state of the working directory's repository, else of nemotron's own checkout."""
    return _code_version_of(Path.cwd()) or _code_version_of(Path(__file__).resolve().parent)


@functools.cache
def _code_version_of(directory: Path) -> CodeVersion | None:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        repo = git("rev-parse", "--show-toplevel")
    except (OSError, subprocess.SubprocessError):
        return None
    return CodeVersion(git_sha=sha, dirty=dirty, repo=repo)
