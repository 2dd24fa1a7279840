"""Megatron-Core's checkpoint writer keeps its results in a spawned Manager process; SLURM signals
every process of a job step, so that process must outlive the stop signal that asks for the
final checkpoint (nemotron.train.checkpoint.start_writer_queue)."""

import pytest

from helpers import run_python

pytestmark = pytest.mark.slow

CODE = """
import multiprocessing, os, signal, sys, time
from nemotron.train import checkpoint
from megatron.core.dist_checkpointing.strategies import filesystem_async
if sys.argv[1] == "protected":
    checkpoint.start_writer_queue()
else:
    filesystem_async._get_write_results_queue()
(manager,) = multiprocessing.active_children()
os.kill(manager.pid, signal.SIGUSR1)
time.sleep(1.0)
print("alive" if manager.is_alive() else "dead")
"""


@pytest.mark.parametrize(("how", "expected"), [("protected", "alive"), ("as_megatron_starts_it", "dead")])
def test_the_writer_queue_survives_a_stop_signal_only_when_started_with_it_ignored(how, expected):
    done = run_python(CODE, how, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == expected
