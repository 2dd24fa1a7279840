"""Running a step's work as one child process, ``python -m MODULE ARGS``, and reading its result.

Megatron's process-wide state (the process group, model-parallel groups, the CPU patches)
lives and dies with the child, so the step's own process stays clean for the next job. The
child gets the rendezvous of a world of one process and writes its result as JSON to a file
the parent names; it prints its own error, so a failure here is one line saying which step
failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nemo_runspec.errors import NemotronError
from nemo_runspec.slurm.rendezvous import single_process_env


class ChildProcessFailed(NemotronError):
    """A step's child process exited with an error, or without writing its result."""

    default_hint = "the lines above are the child process's own error"


def run_module(module: str, args: Sequence[str], *, result: Path, what: str, consequence: str | None = None,
               error: type[NemotronError] = ChildProcessFailed, hint: str | None = None) -> dict[str, Any]:
    """Run ``python -m module args`` as one process and return the JSON it wrote to ``result``.

    A non-zero exit status, or no ``result`` file, raises ``error``: "``what`` exited with status
    N" and then ``consequence`` (what the failure leaves behind).
    """
    result.unlink(missing_ok=True)
    env = {**os.environ, **single_process_env()}
    status = subprocess.run([sys.executable, "-m", module, *map(str, args)], env=env).returncode
    if status != 0 or not result.is_file():
        message = f"{what} exited with status {status}" + (f"; {consequence}" if consequence else "")
        raise error(message, hint=hint or ChildProcessFailed.default_hint)
    return json.loads(result.read_text(encoding="utf-8"))
