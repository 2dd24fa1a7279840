#!/usr/bin/env bash
# The GPU check (issue 14), one prepared run on the lent GPU machine: installs the carried
# wheels (scripts/gpu-wheels.sh fetched them into the git-ignored .gpu-wheels/) into a
# --target folder, then runs scripts/gpu_check.py: versions, a ~1.1B dense GPT trained 30 steps
# in bf16 through nemotron's engine (tokens/s, MFU), and a distributed checkpoint save/load
# checked bit for bit. Prints one table (also $OUT/gpu-check.txt, the log $OUT/gpu-check.log)
# and exits non-zero on any failure. At most 8 minutes: the install, then the check under a
# 7-minute timeout (it needs about 2 to 3; on SIGTERM it still prints its table).
#
#   here, once:             bash scripts/gpu-wheels.sh
#   device tool (repo root): run(command="bash scripts/gpu-check.sh", carry=[".gpu-wheels"], timeout_s=540)
#
# Extra arguments go to gpu_check.py (--cpu-smoke runs the CPU twin, no GPU needed).
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-/tmp/gpu-check-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
SITE=${GPU_CHECK_SITE:-/tmp/gpu-check-site}

shopt -s nullglob
wheels=(.gpu-wheels/*.whl)
if ((${#wheels[@]} == 0)); then
    echo "gpu-check: no wheels in .gpu-wheels/: run scripts/gpu-wheels.sh first and carry .gpu-wheels" >&2
    exit 2
fi
# The device README's recipe: no index (no network there), no dependencies (each is carried or
# already installed), into a folder that PYTHONPATH puts ahead of the machine's packages.
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}" \
    || { echo "gpu-check: installing the wheels failed" >&2; exit 3; }
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true; } 2>&1 | tee "$OUT/gpu-check.log"
timeout -k 15 420 "$PY" scripts/gpu_check.py --out "$OUT/gpu-check.txt" "$@" 2>&1 | tee -a "$OUT/gpu-check.log"
status=${PIPESTATUS[0]}
if ((status == 124 || status == 137)); then
    echo "gpu-check: stopped at its time limit (exit $status)" >&2
fi
exit "$status"
