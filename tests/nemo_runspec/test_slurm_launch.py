"""Following submitted jobs, and which way a sweep is submitted (no cluster needed)."""

from __future__ import annotations

import pytest

from nemo_runspec.slurm.jobs import JobFailed
from nemo_runspec.slurm.profile import Profile
from nemo_runspec.slurm.submit import SubmittedJob


def job(job_id: str) -> SubmittedJob:
    return SubmittedJob(job_id=job_id, name="sweep", profile="p", argv=[], cwd="/", log=f"/{job_id}.out", submitted_at=0)


def test_a_sweep_is_followed_to_the_end_of_every_job_and_fails_once(monkeypatch, capsys):
    from nemo_runspec.slurm import launch

    followed = []

    def wait_for(submitted, out):
        followed.append(submitted.job_id)
        if submitted.job_id in ("9_0", "9_2"):
            raise JobFailed(f"job {submitted.job_id} (sweep) ended FAILED with exit code 1", hint="see its log")

    monkeypatch.setattr(launch, "wait_for", wait_for)
    with pytest.raises(JobFailed, match=r"2 of 3 jobs failed, first: job 9_0 \(sweep\) ended FAILED") as err:
        launch.wait_for_all([job("9_0"), job("9_1"), job("9_2")])
    assert followed == ["9_0", "9_1", "9_2"] and err.value.hint == "see its log"
    assert "error: job 9_2 (sweep) ended FAILED" in capsys.readouterr().err
    launch.wait_for_all([job("9_1")])


@pytest.mark.parametrize(("image", "wait", "ours"), [(None, True, False), (None, False, True),
                                                      ("/c/cpu.sqsh", True, True), ("/c/cpu.sqsh", False, True)])
def test_hydras_launcher_takes_sweeps_it_can_run(monkeypatch, isolated, image, wait, ours):
    from nemo_runspec import hydra_app
    from nemotron.stages import slurm

    taken = []
    monkeypatch.setattr(slurm, "sweep_array", lambda *a, **k: taken.append(("ours", k["wait"])))
    monkeypatch.setattr("nemo_runspec.slurm.submit.check_accepted", lambda *a: None)
    monkeypatch.setattr(hydra_app, "run", lambda *a, **k: taken.append(("hydra", k["multirun"])))
    profile = Profile(name="p", executor="slurm", container_image=image)
    from nemotron.recipes import recipe

    composed = hydra_app.compose_jobs(recipe("nano3", "data_prep_rl"), ["data_prep.seed=1,2"])
    slurm.submit_recipe(slurm.Placement(profile, wait), "nano3", "data_prep_rl", ["data_prep.seed=1,2"], composed,
                        True, False)
    assert taken == ([("ours", wait)] if ours else [("hydra", True)])
