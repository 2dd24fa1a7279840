"""Execution profiles from env.toml, their sbatch parameters and sweep overrides (no cluster needed)."""

from __future__ import annotations

import re

import pytest
from helpers import REPO

from nemo_runspec.errors import ConfigError
from nemo_runspec.slurm.launch import sweep_overrides
from nemo_runspec.slurm.profile import Profile, load_profile
from nemo_runspec.slurm.rendezvous import allocation_tasks, torch_env
from nemo_runspec.slurm.submit import sbatch_parameters

ENV = """
[base]
executor = "slurm"
partition = "batch"
account = "acct"
time = "02:30:00"
env = { A = "1" }

[gpu]
extends = "base"
nodes = 2
ntasks_per_node = 8
gpus_per_node = 8
container_image = "/c/nemotron-gpu.sqsh"
container_mounts = ["/lustre:/lustre", "/data:/data:ro"]
setup = ["source /opt/venv/bin/activate", "export PATH=${HOME}/bin:$PATH"]
sbatch = { mail-type = "END" }

[one]
extends = "base"
container_image = "/c/nemotron-cpu.sqsh"
mem = "64G"

[typo]
extends = "base"
partiton = "x"

[badtime]
executor = "slurm"
time = "two hours"

[noexec]
partition = "x"
"""


@pytest.fixture
def env_file(tmp_path, monkeypatch):
    path = tmp_path / "env.toml"
    path.write_text(ENV)
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(path))
    return path


def test_extends_merges_and_child_wins(env_file):
    gpu = load_profile("gpu")
    assert (gpu.partition, gpu.account, gpu.nodes, gpu.tasks, gpu.time_minutes) == ("batch", "acct", 2, 16, 150)
    assert gpu.env == {"A": "1"} and gpu.is_slurm


@pytest.mark.parametrize(("name", "message"), [
    ("typo", "profile 'typo': partiton: unknown key"),
    ("badtime", "profile 'badtime': time: 'two hours' is not a SLURM time"),
    ("noexec", "profile 'noexec': executor: missing"),
    ("nope", "profile 'nope' is not defined (profiles: badtime, base, gpu, noexec, one, typo)"),
])
def test_bad_profiles_are_one_line_errors_naming_the_file_and_field(env_file, name, message):
    with pytest.raises(ConfigError) as caught:
        load_profile(name)
    assert str(env_file) in str(caught.value) and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_no_env_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="--run/--batch gpu: no env.toml found"):
        load_profile("gpu")


@pytest.mark.parametrize(("text", "minutes"), [("30", 30), ("30:30", 31), ("01:00:00", 60), ("2-00", 2880),
                                               ("1-02:03:04", 1564), ("0:20", 1)])
def test_time_is_read_as_sbatch_reads_it(text, minutes):
    assert Profile(name="p", executor="slurm", time=text).time_minutes == minutes


def test_multi_task_profile_runs_the_driver_on_the_node_and_training_in_the_container(env_file):
    parameters = sbatch_parameters(load_profile("gpu"), "nano3-pretrain")
    assert parameters["use_srun"] is False and parameters["srun_args"] is None
    assert (parameters["nodes"], parameters["ntasks_per_node"], parameters["gpus_per_node"]) == (2, 8, 8)
    assert parameters["time"] == 150 and parameters["partition"] == "batch" and parameters["account"] == "acct"
    assert parameters["additional_parameters"] == {"mail-type": "END", "signal": "USR1@120"}
    assert parameters["setup"][0] == "source /opt/venv/bin/activate"
    assert load_profile("gpu").srun_args()[:2] == ["--container-image=/c/nemotron-gpu.sqsh",
                                                   "--container-mounts=/lustre:/lustre,/data:/data:ro"]


def test_one_task_profile_runs_the_whole_command_in_the_container(env_file):
    parameters = sbatch_parameters(load_profile("one"), "x")
    assert parameters["use_srun"] is True and parameters["mem"] == "64G"
    assert parameters["srun_args"][0] == "--container-image=/c/nemotron-cpu.sqsh"


def test_the_command_in_a_container_runs_the_images_python(env_file):
    import sys

    from nemotron.stages.slurm import job_argv

    assert load_profile("one").job_python() == "python"            # the image's, not this machine's path
    assert job_argv(load_profile("one"), "nano3", ("sft",), [], False)[:3] == ["python", "-m", "nemotron.cli.app"]
    assert load_profile("gpu").job_python() == sys.executable      # the driver runs on the node
    assert load_profile("base").job_python() == sys.executable
    assert Profile(name="p", executor="slurm", container_image="/c.sqsh", python="/opt/py/bin/python3").job_python() \
        == "/opt/py/bin/python3"


def test_submitit_renders_the_parameters_into_a_batch_script(env_file, tmp_path):
    from submitit.slurm.slurm import _make_sbatch_string

    parameters = sbatch_parameters(load_profile("gpu"), "nano3-pretrain")
    script = _make_sbatch_string(command="python -m x", folder=tmp_path, **parameters)
    for line in ("#SBATCH --partition=batch", "#SBATCH --ntasks-per-node=8", "#SBATCH --gpus-per-node=8",
                 "#SBATCH --time=150", "#SBATCH --job-name=nano3-pretrain", "#SBATCH --mail-type=END",
                 "export PATH=${HOME}/bin:$PATH"):
        assert line in script
    assert "srun" not in script.split("# command")[-1]


def test_dependent_jobs_are_cancelled_when_a_dependency_fails(env_file):
    extra = sbatch_parameters(load_profile("base"), "x", ["12", "13"])["additional_parameters"]
    assert extra == {"dependency": "afterok:12:13", "kill-on-invalid-dep": "yes", "signal": "USR1@120"}


def test_a_one_task_job_runs_its_driver_as_a_step_so_that_the_stop_signal_reaches_it(env_file, tmp_path):
    from submitit.slurm.slurm import _make_sbatch_string

    parameters = sbatch_parameters(load_profile("base"), "x")
    assert parameters["use_srun"] is True and parameters["srun_args"] == []
    script = _make_sbatch_string(command="python -m x", folder=tmp_path, **parameters)
    assert "#SBATCH --signal=USR1@120" in script and "USR2" not in script  # no B:, so the steps get it
    assert script.split("# command")[-1].strip().splitlines()[-1].startswith("srun ")


@pytest.mark.parametrize(("value", "written"), [("USR1@120", "USR1@120"), ("SIGTERM@600", "TERM@600"),
                                                ("USR1@0", "USR1@0")])
def test_the_stop_signal_and_requeue_go_into_the_batch_script(value, written):
    profile = Profile(name="p", executor="slurm", signal=value, requeue=True)
    extra = sbatch_parameters(profile, "x")["additional_parameters"]
    assert (extra["signal"], extra["requeue"]) == (written, True)


@pytest.mark.parametrize("value", ["USR2@90", "B:USR1@120", "USR1", "KILL@10", "USR1@-5"])
def test_a_stop_signal_training_would_not_catch_is_refused(value):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="USR1 or TERM"):
        Profile(name="p", executor="slurm", signal=value)


def test_sweep_overrides_compose_into_hydras_submitit_launcher(env_file, monkeypatch, tmp_path):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    config_dir = tmp_path / "conf"
    config_dir.mkdir()
    (config_dir / "config.yaml").write_text("x: 1\n")
    monkeypatch.delenv("A", raising=False)
    overrides = sweep_overrides(load_profile("gpu"), "nano3-pretrain")
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert (launcher["partition"], launcher["account"], launcher["tasks_per_node"], launcher["timeout_min"]) == \
        ("batch", "acct", 1, 150)
    assert list(cfg.hydra.launcher.setup) == ["source /opt/venv/bin/activate", "export PATH=${HOME}/bin:$PATH"]
    assert launcher["additional_parameters"] == {"mail-type": "END", "signal": "USR1@120"}
    assert re.search(r"/%j$", launcher["submitit_folder"])
    recorder = OmegaConf.to_container(cfg.hydra.callbacks.slurm_jobs)
    assert recorder == {"_target_": "nemo_runspec.slurm.sweep_record.RecordSweepJob", "name": "nano3-pretrain",
                        "profile": "gpu", "job_dir": str(load_profile("gpu").resolved_job_dir())}
    import os

    assert os.environ["A"] == "1"  # reaches the jobs through sbatch's --export=ALL


def test_a_sweep_job_records_itself_where_nemotron_jobs_looks(tmp_path, monkeypatch):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from nemo_runspec.slurm.submit import load_records

    recorder = instantiate({"_target_": "nemo_runspec.slurm.sweep_record.RecordSweepJob", "name": "nano3-sft",
                            "profile": "gpu", "job_dir": str(tmp_path)})
    config = OmegaConf.create({"hydra": {"overrides": {"task": ["train.lr=0.1"]}, "runtime": {"cwd": "/work"}}})
    recorder.on_job_start(config=config)
    assert load_records(tmp_path) == []  # a local sweep: nothing was submitted
    for name, value in {"SUBMITIT_EXECUTOR": "slurm", "SUBMITIT_FOLDER": str(tmp_path / "%j"), "SLURM_JOB_ID": "41", "SLURM_ARRAY_JOB_ID": "40",
                        "SLURM_ARRAY_TASK_ID": "1", "SLURM_PROCID": "0"}.items():
        monkeypatch.setenv(name, value)
    recorder.on_job_start(config=config)
    [job] = load_records(tmp_path)
    assert (job.job_id, job.name, job.profile, job.argv, job.cwd) == ("40_1", "nano3-sft", "gpu", ["train.lr=0.1"], "/work")
    assert job.log == str(tmp_path / "40_1" / "40_1_0_log.out")


def test_srun_tasks_get_their_rank_from_slurm():
    task = {"SLURM_JOB_ID": "7", "SLURM_STEP_ID": "0", "SLURM_PROCID": "3", "SLURM_NTASKS": "4",
            "SLURM_STEP_NUM_TASKS": "4", "SLURM_LOCALID": "1"}
    assert torch_env(task) == {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}
    assert torch_env({**task, "RANK": "0"}) == {}  # torchrun already set it
    assert torch_env({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}) == {}  # the batch script itself
    assert allocation_tasks({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}) == 4
    assert allocation_tasks({"SLURM_NTASKS": "4"}) == 1


def test_the_example_env_file_is_valid_and_its_images_are_built_here(monkeypatch):
    example = REPO / "env.example.toml"
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(example))
    from nemo_runspec.env import load_env

    images = set()
    for name in load_env().profile_names:
        profile = load_profile(name)
        if profile.container_image:
            match = re.search(r"nemotron-(\w+)\.sqsh$", profile.container_image)
            assert match, profile.container_image
            images.add(match[1])
    assert images == {"gpu", "rl", "cpu"}
    for image in images:
        assert (REPO / "docker" / f"{image}.Dockerfile").is_file()

