#!/usr/bin/env bash
# The wheels scripts/gpu-check.sh installs on the lent GPU machine, fetched here into
# .gpu-wheels/ (git-ignored; never committed). That machine has Python 3.12 (x86-64), torch
# (CUDA 13), transformers, triton, numpy, packaging, PyYAML and psutil, but no network and no
# megatron-core, TransformerEngine, pydantic or omegaconf. What nemotron's training path imports
# at module level beyond those (nemotron.schemas -> nemo_runspec.schema: pydantic; the
# nemo_runspec package -> its ${art:} resolver: omegaconf; megatron.core inside the engine):
#
#   megatron-core   pyproject: >=0.16.1 for python>=3.12; 0.16.1 (the CPU tests' version, which
#                   nemotron/train/cpu_compat.py is written against) has a cp312 x86-64 wheel
#   pydantic, pydantic-core, annotated-types, typing-inspection, typing-extensions
#   omegaconf, antlr4-python3-runtime (omegaconf's parser; PyPI has it only as an sdist, so
#                   its pure-Python wheel is built here)
#   einops          Megatron-Core's Mamba mixer (the hybrid part of the check). mamba_ssm and
#                   causal-conv1d are CUDA builds (no wheels for this machine): without them the
#                   hybrid model runs on nemotron's reference kernels and the kernel rows say absent
#
# Never a torch wheel (or anything of NVIDIA's): the machine's own torch is the one to test.
# Versions are this checkout's .venv's (what CI runs), else the pins below; MCORE_VERSION
# overrides megatron-core's. The working tree plus these wheels must fit the device tool's
# 64 MiB; the script prints both and fails if they do not.
#
# Usage (repository root or anywhere):  bash scripts/gpu-wheels.sh
# Then through the device tool:  run(command="bash scripts/gpu-check.sh", carry=[".gpu-wheels"],
#                                    timeout_s=540)
set -euo pipefail
cd "$(dirname "$0")/.."

DEST=.gpu-wheels
LIMIT=$((64 * 1024 * 1024))  # the device tool's limit on what travels (tree + carried paths)
PY=${PYTHON:-.venv/bin/python}
[[ -x $PY ]] || PY=python3

version() {  # version NAME FALLBACK: the version installed here, else FALLBACK
    "$PY" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$1" 2>/dev/null || echo "$2"
}
MCORE=${MCORE_VERSION:-$(version megatron-core 0.16.1)}
BINARY=(
    "megatron-core==$MCORE"
    "pydantic==$(version pydantic 2.14.4)"
    "pydantic-core==$(version pydantic-core 2.50.5)"
    "annotated-types==$(version annotated-types 0.8.0)"
    "typing-inspection==$(version typing-inspection 0.4.5)"
    "typing-extensions==$(version typing-extensions 4.16.0)"
    "omegaconf==$(version omegaconf 2.3.1)"
    "einops==$(version einops 0.8.2)"
)
SOURCE_ONLY=("antlr4-python3-runtime==$(version antlr4-python3-runtime 4.9.3)")

rm -rf "$DEST"
mkdir -p "$DEST"
# The device README's recipe: pip matches manylinux_2_N exactly, so name the usual N.
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d "$DEST" "${BINARY[@]}"
"$PY" -m pip wheel --quiet --no-deps -w "$DEST" "${SOURCE_ONLY[@]}"

# Exactly one wheel per name, none of torch's or NVIDIA's, and every requirement of each
# either carried or already on the machine (markers evaluated for CPython 3.12 on Linux x86-64).
"$PY" - "$DEST" <<'EOF'
import sys
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

ON_DEVICE = {"torch", "numpy", "packaging", "pyyaml", "psutil", "typing-extensions"}
ENV = {"python_version": "3.12", "python_full_version": "3.12.3", "implementation_name": "cpython",
       "platform_python_implementation": "CPython", "sys_platform": "linux", "platform_system": "Linux",
       "platform_machine": "x86_64", "os_name": "posix", "extra": ""}
wheels = sorted(Path(sys.argv[1]).iterdir())
problems = [f"not a wheel: {p.name}" for p in wheels if p.suffix != ".whl"]
wheels = [p for p in wheels if p.suffix == ".whl"]
names = [canonicalize_name(parse_wheel_filename(p.name)[0]) for p in wheels]
problems += [f"two wheels of {n}" for n in set(names) if names.count(n) > 1]
problems += [f"must not be carried: {n}" for n in names if n == "torch" or n.startswith(("torch-", "nvidia-"))]
for wheel, name in zip(wheels, names):
    with zipfile.ZipFile(wheel) as z:
        meta = next(f for f in z.namelist() if f.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        if req.marker is not None and not req.marker.evaluate(ENV):
            continue  # an extra, or another Python or platform
        need = canonicalize_name(req.name)
        if need not in names and need not in ON_DEVICE:
            problems.append(f"{name} needs {req}, neither carried nor on the machine")
for p in problems:
    print(f"gpu-wheels: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
EOF

wheel_bytes=$(cat "$DEST"/*.whl | wc -c)
# What else travels: tracked files and untracked files git does not ignore.
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | xargs -0 cat 2>/dev/null | wc -c)
echo "megatron-core $MCORE (cp312, manylinux x86-64); wheels in $DEST/:"
for w in "$DEST"/*.whl; do
    printf '  %-72s %8d KiB\n' "$(basename "$w")" $(( $(wc -c <"$w") / 1024 ))
done
awk -v w="$wheel_bytes" -v t="$tree_bytes" -v l="$LIMIT" 'BEGIN { m = 1048576
    printf "wheels: %.1f MiB; with the working tree (%.1f MiB): %.1f MiB of the %d MiB that may travel\n", w/m, t/m, (w+t)/m, l/m }'
if ((wheel_bytes + tree_bytes > LIMIT)); then
    echo "gpu-wheels: over the device tool's limit" >&2
    exit 1
fi
