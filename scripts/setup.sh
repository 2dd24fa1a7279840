#!/usr/bin/env bash
# Creates .venv/ in the repository root and installs nemotron into it (editable, with test tools).
# On CPU machines torch is pinned to the CPU wheel through constraints/cpu.txt, so that no
# requirement can pull a CUDA build. Set NEMOTRON_GPU=1 inside a GPU container to keep the
# container's torch instead (the venv then sees the system site-packages).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

if [ "${NEMOTRON_GPU:-0}" = "1" ]; then
    [ -x .venv/bin/python ] || "$PY" -m venv --system-site-packages .venv
    .venv/bin/python -m pip install --quiet -e '.[dev]'
else
    [ -x .venv/bin/python ] || "$PY" -m venv .venv
    .venv/bin/python -m pip install --quiet -c constraints/cpu.txt torch==2.13.0
    .venv/bin/python -m pip install --quiet -c constraints/cpu.txt -e '.[dev]'
fi
.venv/bin/python - <<'PY'
import torch
assert torch.version.cuda is None or __import__("os").environ.get("NEMOTRON_GPU") == "1", \
    f"a CUDA build of torch was installed ({torch.__version__}) on a CPU setup"
print(f"nemotron environment ready: torch {torch.__version__}")
PY
