"""The CLI starts without the heavy libraries: help and artifact commands never import them."""

from helpers import run_python

HEAVY = ("torch", "megatron", "transformers", "wandb", "trl")

PROBE = """
import sys
sys.argv = ["nemotron", *sys.argv[1:]]
from nemotron.cli.app import main
try:
    main()
except SystemExit:
    pass
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(%r))
print("HEAVY", heavy, file=sys.stderr)
""" % (HEAVY,)


def test_help_imports_no_heavy_library(isolated):
    done = run_python(PROBE, "--help", cwd=isolated)
    assert "Usage" in done.stdout and "HEAVY []" in done.stderr


def test_artifact_commands_import_no_heavy_library(isolated):
    assert "HEAVY []" in run_python(PROBE, "demo", cwd=isolated).stderr
    assert "HEAVY []" in run_python(PROBE, "artifact", "list", cwd=isolated).stderr
