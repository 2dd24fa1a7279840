"""A step's child process: its result is read back, its failure is one line naming the step.

``python -m json.tool IN OUT`` stands in for a job module: it writes OUT from IN, and exits 1
on input that is not JSON.
"""

import pytest

from nemo_runspec.errors import NemotronError
from nemotron.train.child_process import ChildProcessFailed, run_module


def test_the_result_the_child_writes_is_returned(tmp_path):
    job, result = tmp_path / "job.json", tmp_path / "result.json"
    job.write_text('{"step": 3}')
    assert run_module("json.tool", [job, result], result=result, what="the job") == {"step": 3}


def test_a_failing_child_raises_the_callers_error_in_one_line(tmp_path):
    class StepFailed(NemotronError):
        pass

    job, result = tmp_path / "job.json", tmp_path / "result.json"
    job.write_text("not json")
    result.write_text("{}")  # a stale result of an earlier run is not taken for this one's
    with pytest.raises(StepFailed) as err:
        run_module("json.tool", [job, result], result=result, what="the conversion", consequence="nothing was logged",
                   error=StepFailed)
    assert str(err.value) == "the conversion exited with status 1; nothing was logged"
    assert err.value.hint == ChildProcessFailed.default_hint
