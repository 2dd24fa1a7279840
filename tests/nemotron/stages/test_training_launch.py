"""How a training step starts its processes inside a SLURM allocation."""

from __future__ import annotations


def test_training_tasks_in_a_container_use_the_images_python(monkeypatch):
    import json
    import sys

    from nemotron.stages.training import srun_command

    monkeypatch.setenv("NEMOTRON_SRUN_ARGS", json.dumps(["--container-image=/c/nemotron-gpu.sqsh"]))
    env: dict = {}
    command = srun_command(["-m", "nemotron.train.launch", "job.json"], env)
    assert command[:4] == ["srun", "--kill-on-bad-exit=1", "--container-image=/c/nemotron-gpu.sqsh", "python"]
    assert env["MASTER_PORT"].isdigit() and env["MASTER_ADDR"]
    monkeypatch.setenv("NEMOTRON_SRUN_ARGS", "[]")
    assert srun_command(["-m", "x"], {})[2] == sys.executable
