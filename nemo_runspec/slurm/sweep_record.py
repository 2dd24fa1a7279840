"""A Hydra callback that records each job of a ``-m --run PROFILE`` sweep for ``nemotron jobs``.

hydra-submitit-launcher submits the sweep's array job and then waits inside Hydra, so the
submitting process never sees the job ids. Each array element records itself instead, when it
starts on its node: the same JSON record a ``--run`` job gets, in the profile's job folder.
"""

from __future__ import annotations

import os
import time
from typing import Any

from hydra.experimental.callback import Callback


class RecordSweepJob(Callback):
    """``hydra.callbacks.slurm_jobs``: ``name`` (the sweep's job name), ``profile``, ``job_dir``.

    The record's ``argv`` holds the element's overrides, and ``submitted_at`` the time it started
    (the submitting process is busy waiting inside Hydra's launcher)."""

    def __init__(self, name: str, profile: str, job_dir: str) -> None:
        self.name, self.profile, self.job_dir = name, profile, job_dir

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        from pathlib import Path

        from nemo_runspec.slurm.submit import SubmittedJob, write_record

        if os.environ.get("SUBMITIT_EXECUTOR") != "slurm":  # a local sweep: nothing was submitted
            return
        import submitit

        here = submitit.JobEnvironment()
        overrides = list(config.hydra.overrides.task)
        job = SubmittedJob(job_id=here.job_id, name=self.name, profile=self.profile, argv=overrides,
                           cwd=str(config.hydra.runtime.cwd), log=str(here.paths.stdout),
                           submitted_at=time.time())
        write_record(Path(self.job_dir), job)
