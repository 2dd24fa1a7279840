"""scripts/gpu_check.py's CPU twin (--cpu-smoke): the path the GPU check runs (nemotron's engine,
distributed optimizer, checkpoint save and reload), with a tiny model on CPU, so its logic is
tested where CI runs; the GPU run itself goes through scripts/gpu-check.sh on a lent machine.

Measured here: about 10 s per run (most of it importing Megatron-Core and the checkpoint)."""

from __future__ import annotations

import pytest

from helpers import REPO, run_python

pytestmark = pytest.mark.slow

SCRIPT = REPO / "scripts" / "gpu_check.py"
CHECKS = ("world", "model", "train", "checkpoint save", "checkpoint load", "weights after reload",
          "optimizer state after reload", "loss of step 4 after reload", "loss of step 5 after reload",
          "hybrid model", "hybrid train")
MEASUREMENTS = ("torch", "CUDA", "NCCL", "TransformerEngine", "megatron-core", "tokens/s", "MFU", "time",
                "kernel mamba_chunk_scan_combined", "kernel causal_conv1d_fn", "kernel rmsnorm_fn (gated)",
                "hybrid tokens/s")
# As scripts/gpu-check.sh runs it: the script's own file, so its __main__ guard is what runs.
RUN_SCRIPT = "import runpy, sys; sys.argv = [sys.argv[1], *sys.argv[2:]]; runpy.run_path(sys.argv[0], run_name='__main__')"


def rows(table: str) -> dict[str, tuple[str, str]]:
    """check -> (result, value) of a table the script prints: columns padded, two spaces apart
    (a check's name has single spaces only)."""
    out = {}
    for line in table.strip().splitlines()[2:]:
        if line.startswith("GPU CHECK"):
            break
        check, rest = line.split("  ", 1)
        result, _, value = rest.strip().partition("  ")
        out[check.strip()] = (result, value.strip())
    return out


def test_the_cpu_smoke_run_passes_every_check_and_writes_the_table(tmp_path):
    out = tmp_path / "gpu-check.txt"
    done = run_python(RUN_SCRIPT, str(SCRIPT), "--cpu-smoke", "--out", str(out), timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "GPU CHECK PASSED" in done.stdout
    table = rows(out.read_text())
    assert table == rows(done.stdout.split("\n\n")[-1]), "stdout and the file show the same table"
    for check in CHECKS:
        assert table[check][0] == "ok", (check, table[check])
    for row in MEASUREMENTS:
        assert table[row][0] == "info", (row, table[row])
    assert table["TransformerEngine"][1] == "absent"
    assert "bit-identical" in table["weights after reload"][1]
    assert "difference 0.00e+00" in table["loss of step 5 after reload"][1]  # CPU runs are bitwise


def test_a_reload_that_restores_nothing_fails_the_check(tmp_path):
    """The checks can fail: with checkpoint.load a no-op, the weights, the optimizer state and
    the losses after the "reload" are those of the reference steps, and the exit status says so."""
    code = "\n".join([
        "import importlib.util, sys",
        "spec = importlib.util.spec_from_file_location('gpu_check', sys.argv[1])",
        "module = importlib.util.module_from_spec(spec)",
        "sys.modules['gpu_check'] = module",
        "spec.loader.exec_module(module)",
        "from nemotron.train import checkpoint",
        "checkpoint.load = lambda checkpoint_dir, run, layout, rank: False",
        "sys.exit(module.main(['--cpu-smoke', '--out', sys.argv[2]]))",
    ])
    out = tmp_path / "gpu-check.txt"
    done = run_python(code, str(SCRIPT), str(out), timeout=300)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "GPU CHECK FAILED" in done.stdout
    table = rows(out.read_text())
    assert table["checkpoint save"][0] == "ok"
    for check in ("weights after reload", "optimizer state after reload", "loss of step 4 after reload"):
        assert table[check][0] == "FAIL", (check, table[check])
