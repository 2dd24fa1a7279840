"""The README's two commands are what CI runs, and the install is a CPU torch."""

import os
import re
from importlib.metadata import version

from helpers import REPO


def quickstart_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_readme_has_exactly_two_setup_commands_and_ci_runs_them():
    setup_and_main, tests = quickstart_commands()
    assert setup_and_main == "scripts/setup.sh && .venv/bin/nemotron nano3 pipe"
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert "rm -rf .venv" in ci and "scripts/setup.sh" in ci
    assert ci.index("scripts/slurm-cluster.sh start") < len(ci) - 1  # the SLURM tests' cluster
    assert "trap 'scripts/slurm-cluster.sh stop' EXIT" in ci
    assert ci[-1] == tests == ".venv/bin/python -m pytest"
    assert "|| true" not in "\n".join(ci)


def test_cpu_install_pins_the_cpu_torch():
    assert (REPO / "constraints" / "cpu.txt").read_text().split() == ["torch==2.13.0"]
    assert "-c constraints/cpu.txt" in (REPO / "scripts" / "setup.sh").read_text()
    if os.environ.get("NEMOTRON_GPU") != "1":  # GPU containers keep their own CUDA torch
        assert version("torch").endswith("+cpu")
