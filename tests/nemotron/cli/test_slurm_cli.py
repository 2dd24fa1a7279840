"""--run/--batch PROFILE, -m sweeps, pipe --run and `nemotron jobs`, against the real
single-node SLURM cluster on localhost (scripts/slurm-cluster.sh)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import run_cli

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@pytest.fixture
def cluster(slurm_cluster, isolated: Path) -> Path:
    """An env.toml in the test's work directory with profiles for the local cluster; every
    test keeps its own submitit folder (job ids restart when the cluster's state is wiped)."""
    (isolated / "env.toml").write_text(f"""
[localhost]
executor = "slurm"
partition = "{slurm_cluster}"
time = "00:20:00"
job_dir = "{isolated / 'jobs'}"
env = {{ OMP_NUM_THREADS = "1" }}

[configured]
extends = "localhost"
setup = ["echo setup line ran on $(hostname)"]
env = {{ NEMOTRON_DATA_ROOT = "{isolated / 'profile-data'}" }}

[nowhere]
extends = "localhost"
partition = "no-such-partition"

[sleepy]
extends = "localhost"
setup = ["sleep 300"]

[two-tasks]
extends = "localhost"
ntasks_per_node = 2

[preemptible]
extends = "localhost"
requeue = true

[preemptible-two-tasks]
extends = "two-tasks"
requeue = true
""")
    return isolated


def record(work: Path, name: str, version: int = 1) -> dict:
    return json.loads((work / "artifacts" / name / "versions" / f"v{version}.json").read_text())


def sacct(job_id: str, lines: int = 1) -> str:
    """State|ExitCode of the job (one line per array element), once accounting has ``lines`` final
    ones: a job's output can be complete a moment before SLURM records its end."""
    deadline = time.time() + 30
    while True:
        text = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State,ExitCode"],
                              capture_output=True, text=True).stdout.strip()
        final = [line for line in text.splitlines() if line.split("|")[0].split()[0] not in ("PENDING", "RUNNING", "COMPLETING")]
        if len(final) >= lines or time.time() > deadline:
            return text
        time.sleep(0.3)


def submitted_id(stdout: str) -> str:
    return re.search(r"submitted job (\d+)", stdout)[1]


def follow_a_sleeping_job(work: Path) -> tuple[subprocess.Popen, str]:
    """``--run sleepy`` in the background (its setup sleeps), once its job is recorded. Ctrl-C
    reaches it even when this suite runs with SIGINT ignored (a shell's ``&`` without job control
    passes that on, and Python then installs no KeyboardInterrupt handler)."""
    import signal

    waiting = subprocess.Popen([sys.executable, "-m", "nemotron.cli.app", "nano3", "data", "prep", "rl", "--run",
                                "sleepy"], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    records = work / "jobs" / "jobs"
    deadline = time.time() + 60
    while not list(records.glob("*.json")) and time.time() < deadline:
        time.sleep(0.2)
    return waiting, next(records.glob("*.json")).stem


def test_a_single_job_runs_the_stage_streams_its_log_and_logs_the_artifact(cluster):
    done = run_cli("nano3", "data", "prep", "rl", "--run", "localhost", cwd=cluster, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    job_id = submitted_id(done.stdout)
    assert "logged nano3-rl-data-tiny:v1" in done.stdout  # the job's own output, streamed
    assert f"job {job_id} (nano3-data_prep_rl) completed" in done.stdout
    logged = record(cluster, "nano3-rl-data-tiny")
    assert logged["type"] == "SplitJsonlDataArtifact"
    assert logged["metadata"]["config"]["launcher"] == {"executor": "slurm", "profile": "localhost", "wait": True}
    assert logged["producer"]["run_id"] == job_id  # the SLURM job that made it
    assert sacct(job_id) == "COMPLETED|0:0"

    status = run_cli("jobs", "status", cwd=cluster)
    assert status.returncode == 0 and re.search(rf"{job_id} .*nano3-data_prep_rl .*localhost .*COMPLETED", status.stdout)
    logs = run_cli("jobs", "logs", job_id, "--job-dir", str(cluster / "jobs"), cwd=cluster)
    assert "logged nano3-rl-data-tiny:v1" in logs.stdout


def test_the_profiles_setup_lines_and_environment_reach_the_job(cluster):
    done = run_cli("nano3", "data", "prep", "rl", "--run", "configured", cwd=cluster, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "setup line ran on" in done.stdout
    assert record(cluster, "nano3-rl-data-tiny")["path"].startswith(str(cluster / "profile-data"))
    files = [p for p in (cluster / "jobs").rglob("*") if p.is_file() and not p.name.endswith(("_log.out", "_log.err"))]
    assert any(p.suffix == ".pkl" for p in files) and any(p.suffix == ".sh" for p in files), files
    leaked = [p for p in files if b"profile-data" in p.read_bytes()]
    assert leaked == [], "the profile's env reaches the job through sbatch, not through files in job_dir"


def test_batch_returns_the_job_id_at_once(cluster):
    done = run_cli("nano3", "data", "prep", "rl", "--batch", "localhost", "data_prep.seed=7", cwd=cluster, timeout=60)
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip().splitlines()[-1]
    assert job_id == submitted_id(done.stdout)
    follow = run_cli("jobs", "logs", job_id, "--follow", cwd=cluster, timeout=300)
    assert follow.returncode == 0 and "logged nano3-rl-data-tiny:v1" in follow.stdout, follow.stderr


def test_the_launcher_config_group_submits_like_run(cluster):
    done = run_cli("nano3", "data", "prep", "rl", "launcher=slurm", "launcher.profile=localhost", "data_prep.seed=9",
                   cwd=cluster, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "submitted job" in done.stdout and "logged nano3-rl-data-tiny:v1" in done.stdout


def test_a_request_slurm_refuses_is_one_line_and_writes_nothing(cluster):
    done = run_cli("nano3", "data", "prep", "rl", "--run", "nowhere", cwd=cluster, timeout=60)
    assert done.returncode == 1
    error = done.stderr.strip().splitlines()
    assert len(error) == 2 and error[0].startswith("error: sbatch refused job 'nano3-data_prep_rl': "), error
    assert "partition" in error[0].lower() and error[1].startswith("hint: check profile 'nowhere'")
    assert not [path for path in (cluster / "jobs").rglob("*") if path.is_file()]


def test_a_failing_job_reports_its_exit_code_and_the_tail_of_its_log(cluster):
    done = run_cli("nano3", "pretrain", "--run", "localhost", "run.data=no-such-data:v3", cwd=cluster, timeout=300)
    assert done.returncode == 1
    job_id = submitted_id(done.stdout)
    error = done.stderr.strip().splitlines()
    assert re.match(rf"error: job {job_id} \(nano3-pretrain\) ended FAILED with exit code 1 \(log .*\)$", error[-2]), error
    assert error[-1] == f"hint: `nemotron jobs logs {job_id}` shows the whole log"
    tail = done.stderr.split("--- last 20 lines of")[1]
    assert "error: " in tail and "no-such-data" in tail  # the job's own one-line error
    assert sacct(job_id) == "FAILED|1:0"


def test_a_cancelled_job_is_reported_as_cancelled_not_waited_on(cluster):
    waiting, job_id = follow_a_sleeping_job(cluster)
    deadline = time.time() + 60
    while "RUNNING" not in run_cli("jobs", "status", job_id, cwd=cluster).stdout and time.time() < deadline:
        time.sleep(0.5)
    cancelled = run_cli("jobs", "cancel", job_id, cwd=cluster)
    assert cancelled.returncode == 0 and f"cancelled {job_id}" in cancelled.stdout
    started = time.time()
    stdout, stderr = waiting.communicate(timeout=60)
    assert time.time() - started < 30
    assert waiting.returncode == 1
    assert f"error: job {job_id} (nano3-data_prep_rl) was cancelled" in stderr
    assert sacct(job_id).startswith("CANCELLED")
    assert "CANCELLED" in run_cli("jobs", "status", cwd=cluster).stdout


def test_ctrl_c_stops_following_but_not_the_job(cluster):
    import signal

    waiting, job_id = follow_a_sleeping_job(cluster)
    time.sleep(1.0)
    waiting.send_signal(signal.SIGINT)
    _, stderr = waiting.communicate(timeout=30)
    assert waiting.returncode == 130
    assert f"stopped following job {job_id}; it goes on" in stderr and "Traceback" not in stderr
    state = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True).stdout.strip()
    assert state in ("PENDING", "RUNNING")
    assert run_cli("jobs", "cancel", job_id, cwd=cluster).returncode == 0
    assert sacct(job_id).startswith("CANCELLED")


def test_a_two_value_sweep_is_one_array_job_with_two_artifact_versions(cluster):
    done = run_cli("nano3", "data", "prep", "rl", "-m", "--run", "localhost", "data_prep.seed=1,2",
                   cwd=cluster, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    seeds = sorted(record(cluster, "nano3-rl-data-tiny", v)["metadata"]["seed"] for v in (1, 2))
    assert seeds == [1, 2]
    logs = sorted(path.name for path in (cluster / "jobs").rglob("*_log.out"))
    array_ids = {name.split("_")[0] for name in logs}
    assert len(logs) == 2 and len(array_ids) == 1, logs  # <array>_0, <array>_1
    array = array_ids.pop()
    assert sacct(array, lines=2).splitlines() == ["COMPLETED|0:0", "COMPLETED|0:0"]
    status = run_cli("jobs", "status", cwd=cluster)  # each element recorded itself when it started
    for element in (f"{array}_0", f"{array}_1"):
        assert re.search(rf"{element} .*nano3-data_prep_rl .*localhost .*COMPLETED", status.stdout), status.stdout
    seed = run_cli("jobs", "logs", f"{array}_1", cwd=cluster)
    assert seed.returncode == 0 and "logged nano3-rl-data-tiny" in seed.stdout


def test_a_batch_sweep_returns_the_array_id_at_once(cluster):
    done = run_cli("nano3", "data", "prep", "rl", "-m", "--batch", "localhost", "data_prep.seed=3,4",
                   cwd=cluster, timeout=60)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    array = done.stdout.strip().splitlines()[-1]
    assert re.findall(r"submitted job (\S+)", done.stdout) == [f"{array}_0", f"{array}_1"]
    for element in (f"{array}_0", f"{array}_1"):
        follow = run_cli("jobs", "logs", element, "--follow", cwd=cluster, timeout=300)
        assert follow.returncode == 0 and "logged nano3-rl-data-tiny" in follow.stdout, follow.stderr
    assert sacct(array, lines=2).splitlines() == ["COMPLETED|0:0", "COMPLETED|0:0"]
    seeds = sorted(record(cluster, "nano3-rl-data-tiny", v)["metadata"]["seed"] for v in (1, 2))
    assert seeds == [3, 4]


def test_sharded_prep_is_an_array_of_slices_then_a_finalize_job(cluster):
    done = run_cli("nano3", "data", "prep", "pretrain", "--num-shards", "2", "--run", "localhost",
                   cwd=cluster, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    jobs = re.findall(r"submitted job (\S+) \(([^)]+)\)", done.stdout)
    array = jobs[0][0].split("_")[0]
    assert [job for job, _ in jobs[:2]] == [f"{array}_0", f"{array}_1"]
    assert jobs[2][1] == "nano3-data_prep_pretrain-finalize" and f"after job {array} completes" in done.stdout
    assert "slice 0/2" in done.stdout and "slice 1/2" in done.stdout
    assert "logged nano3-pretrain-data-tiny:v1" in done.stdout
    blend = record(cluster, "nano3-pretrain-data-tiny")
    assert blend["type"] == "PretrainBlendsArtifact"
    assert not (cluster / "artifacts" / "nano3-pretrain-data-tiny" / "versions" / "v2.json").exists()


def test_pipe_run_chains_jobs_and_the_second_resolves_what_the_first_logged(cluster):
    done = run_cli("nano3", "pipe", "--run", "localhost", "--to", "pretrain", "pretrain:train.steps=2",
                   "pretrain:train.checkpoint_interval=0", cwd=cluster, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    first, second = re.findall(r"submitted job (\d+)", done.stdout)
    assert f"after job {first} completes" in done.stdout
    dependency = json.loads((cluster / "jobs" / "jobs" / f"{second}.json").read_text())["dependency"]
    assert dependency == first
    model = record(cluster, "nano3-pretrain-model-tiny")
    assert model["inputs"] == ["art://nano3-pretrain-data-tiny:v1"]
    assert "nano3-pretrain-data-tiny:v1" in done.stdout.split("made from")[-1]  # the final lineage tree
    assert sacct(first) == "COMPLETED|0:0" and sacct(second) == "COMPLETED|0:0"


def test_pipe_batch_prints_the_job_ids_and_returns(cluster):
    done = run_cli("nano3", "pipe", "--batch", "localhost", "--to", "data_prep_sft", cwd=cluster, timeout=120)
    assert done.returncode == 0, done.stderr
    ids = done.stdout.strip().splitlines()[-1].split()
    assert ids == re.findall(r"submitted job (\d+)", done.stdout) and len(ids) == 5  # two evaluations among them
    last = run_cli("jobs", "logs", ids[-1], "-f", cwd=cluster, timeout=600)
    assert last.returncode == 0 and "logged nano3-sft-data-tiny:v1" in last.stdout, last.stderr


def test_a_failed_pipe_step_cancels_the_steps_after_it(cluster):
    # A value the schema refuses never queues; a step that fails at run time cancels the rest.
    done = run_cli("nano3", "pipe", "--run", "localhost", "--to", "pretrain", "data_prep_pretrain:data_prep.blend=[]",
                   cwd=cluster, timeout=300)
    assert done.returncode == 1 and "submitted job" not in done.stdout
    assert done.stderr.startswith("error: data_prep.blend must hold at least 1 item(s), got []"), done.stderr
    done = run_cli("nano3", "pipe", "--run", "localhost", "--to", "pretrain",
                   "data_prep_pretrain:data_prep.blend=[{name: gone, path: /nonexistent/corpus.jsonl}]",
                   cwd=cluster, timeout=300)
    assert done.returncode == 1
    first, second = re.findall(r"submitted job (\d+)", done.stdout)
    assert f"error: step 1/2 nano3-data_prep_pretrain failed: job {first}" in done.stderr
    assert sacct(second).startswith("CANCELLED")


@pytest.mark.timeout(1500)  # ten jobs, one after the other
def test_multi_task_jobs_start_one_training_process_per_task_through_srun(cluster):
    done = run_cli("nano3", "pipe", "--run", "two-tasks", "pretrain:train.steps=2", "pretrain:train.checkpoint_interval=0",
                   "pretrain:train.tensor_parallel=2", "sft:train.steps=2", "sft:train.checkpoint_interval=0",
                   "sft:train.micro_batch_size=4", "sft:train.global_batch_size=8", "rl:rl.steps=2", cwd=cluster,
                   timeout=1400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    pretrained = record(cluster, "nano3-pretrain-model-tiny")
    assert (pretrained["metadata"]["processes"], pretrained["metadata"]["config"]["train"]["tensor_parallel"]) == (2, 2)
    shards = {path.name for path in (Path(pretrained["path"]) / "model").glob("*.distcp")}
    assert {"__0_0.distcp", "__1_0.distcp"} <= shards, shards  # ranks 0 and 1 each wrote their part
    tuned = record(cluster, "nano3-sft-model-tiny")
    assert (tuned["metadata"]["processes"], tuned["metadata"]["data_parallel"]) == (2, 2)
    assert record(cluster, "nano3-rl-model-tiny")["metadata"]["processes"] == 2  # accelerate under srun
    pretrain_job = re.findall(r"submitted job (\d+)", done.stdout)[1]
    text = next((cluster / "jobs" / pretrain_job).glob("*_log.out")).read_text()
    assert "logged nano3-pretrain-model-tiny:v1" in text and "\x1b[?25l" not in text  # no live redraws in the log


PREEMPTED_RUN = ["nano3", "pretrain", "train.steps=40", "train.checkpoint_interval=20", "train.eval_interval=0",
                 "train.micro_batch_size=2", "train.global_batch_size=4"]


def losses(run_root: Path) -> list[float]:
    (metrics,) = run_root.glob("*/*/metrics.jsonl")
    return [json.loads(line)["loss"] for line in metrics.read_text().splitlines()]


def wait_until(condition, what: str, timeout: float = 240.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (value := condition()):
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# Two tasks, TP2: SLURM signals every process of the training step, Megatron's checkpoint-writer
# Manager among them (checkpoint.start_writer_queue starts it with the stop signals ignored).
@pytest.mark.parametrize(("profile", "args"), [("preemptible", []),
                                               ("preemptible-two-tasks", ["train.tensor_parallel=2"])],
                         ids=["one-task", "two-tasks-tp2"])
def test_a_signalled_job_checkpoints_requeues_and_its_rerun_ends_at_the_uninterrupted_losses(cluster, profile, args):
    """``scancel --signal=USR1`` (what SLURM sends before the time limit) mid-run: training saves
    a checkpoint and exits 75, the job requeues itself, and its rerun resumes, ends at the
    losses of an uninterrupted run bit for bit and logs the model once."""
    assert run_cli("nano3", "data", "prep", "pretrain", cwd=cluster).returncode == 0
    # The profiles run with OMP_NUM_THREADS=1; a CPU matmul's sums depend on its thread count, so
    # the reference uses one thread too (on a machine with more cores it would differ in the 7th digit).
    reference = run_cli(*PREEMPTED_RUN, *args, f"train.output_root={cluster / 'reference'}",
                        *(["train.nproc_per_node=2"] if args else []), cwd=cluster, timeout=600,
                        env={"OMP_NUM_THREADS": "1"})
    assert reference.returncode == 0, reference.stderr[-3000:]
    assert "logged nano3-pretrain-model-tiny:v1" in reference.stdout

    out = cluster / "preempted"
    follower = subprocess.Popen([sys.executable, "-m", "nemotron.cli.app", *PREEMPTED_RUN, *args, "--run", profile,
                                 f"train.output_root={out}"], cwd=cluster, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "250"})
    try:
        job_id = wait_until(lambda: next((p.stem for p in (cluster / "jobs" / "jobs").glob("*.json")), None), "the job")
        wait_until(lambda: len(list(out.glob("*/*/metrics.jsonl"))) and len(losses(out)) >= 3, "three steps")
        subprocess.run(["scancel", "--signal=USR1", job_id], check=True)
        stdout, stderr = follower.communicate(timeout=600)
    finally:
        follower.kill()
    assert follower.returncode == 0, stdout[-3000:] + stderr[-3000:]
    (stopped,) = re.findall(r"stopped at step (\d+) on SIGUSR1: checkpoint saved", stdout)
    assert 3 <= int(stopped) < 40
    assert f"job {job_id} stopped after saving a checkpoint: requeued" in stdout
    assert f"resuming from {next(out.glob('*/*'))}/checkpoints/iter_{int(stopped):07d}" in stdout
    assert stdout.count("logged nano3-pretrain-model-tiny:v2") == 1
    assert not (cluster / "artifacts" / "nano3-pretrain-model-tiny" / "versions" / "v3.json").exists()
    assert losses(out) == losses(cluster / "reference")  # bitwise, each step once
    runs = subprocess.run(["sacct", "-n", "-X", "-P", "--duplicates", "-j", job_id, "-o", "State"],
                          capture_output=True, text=True).stdout.split()
    assert runs == ["REQUEUED", "COMPLETED"], runs
