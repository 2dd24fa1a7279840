import json

import pytest

from nemotron.train.checkpoint import LATEST, TRAINER_FILE, checkpoint_name, find_latest
from nemotron.train.loop import Schedule, learning_rate
from nemotron.train.metrics import MetricsLog, read_metrics

OPT = {"lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 4}


def test_learning_rate_warms_up_then_decays_to_min_lr():
    rates = [learning_rate(step, OPT, 20) for step in range(1, 21)]
    assert rates[:4] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert all(a >= b for a, b in zip(rates[3:], rates[4:]))
    assert rates[-1] == pytest.approx(1e-4)


def test_global_batch_must_split_into_micro_batches():
    assert Schedule(10, 2, 8, 16).accumulation(dp_size=2) == 2
    with pytest.raises(ValueError, match="not a multiple"):
        Schedule(10, 3, 8, 16).accumulation(dp_size=1)


def complete(root, step):
    path = root / checkpoint_name(step)
    path.mkdir(parents=True)
    (path / TRAINER_FILE).write_text(json.dumps({"step": step}))
    return path


def test_a_checkpoint_being_written_is_never_picked_up(tmp_path):
    assert find_latest(tmp_path) is None
    ten = complete(tmp_path, 10)
    twenty = complete(tmp_path, 20)
    (tmp_path / LATEST).write_text(twenty.name)
    (tmp_path / (checkpoint_name(30) + ".tmp") / "model").mkdir(parents=True)  # killed mid-save
    assert find_latest(tmp_path) == twenty
    (tmp_path / checkpoint_name(40)).mkdir()  # renamed without its trainer state: incomplete
    (tmp_path / LATEST).write_text(checkpoint_name(40))
    assert find_latest(tmp_path) == twenty
    (tmp_path / LATEST).unlink()
    assert find_latest(tmp_path) == twenty
    assert ten.exists()


def test_metrics_of_a_resumed_run_drop_records_past_the_checkpoint(tmp_path):
    log = MetricsLog(tmp_path, resume_step=0)
    for step in range(1, 6):
        log.write({"step": step, "loss": float(step)})
    log.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "lo')  # cut short by a kill
    resumed = MetricsLog(tmp_path, resume_step=3)
    resumed.write({"step": 4, "loss": 40.0})
    resumed.close()
    assert [(r["step"], r["loss"]) for r in read_metrics(tmp_path / "metrics.jsonl")] == [
        (1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0)]
