# nemotron-rl: nemotron inside NVIDIA's NeMo-RL container, for `nemotron <family> rl
# rl.backend=nemo_rl` (GRPO with NeMo-RL, Ray and vLLM on GPUs), e.g. on SLURM with
# `--run/--batch PROFILE`.
#
# nemotron/rl/nemo_rl.py needs `import nemo_rl` to work in nemotron's own interpreter and runs
# $NEMO_RL_DIR/examples/run_grpo_math.py (default /opt/nemo-rl) with that same interpreter.
# So nemotron goes into NeMo-RL's Python environment (the `python` on PATH in this base) and
# NEMO_RL_DIR names the base's NeMo-RL source tree. NeMo-RL's environment stays as it is: every
# installed package is pinned, nemotron is installed without dependencies, and only the
# requirements the environment lacks are added, under those pins. trl is left out: it serves
# rl.backend=trl only, which runs in nemotron-gpu, and its floors (datasets, accelerate) are
# above what NeMo-RL pins.
#
#   docker build -f docker/rl.Dockerfile -t nemotron-rl .
#   enroot import -o nemotron-rl.sqsh dockerd://nemotron-rl     # SLURM + pyxis
FROM nvcr.io/nvidia/nemo-rl:v0.4.0

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV NEMO_RL_DIR=/opt/nemo-rl
WORKDIR /opt/nemotron
COPY . .

# NeMo-RL's environment is managed by uv (it may carry no pip), so uv installs into it.
RUN py="$(command -v python)" \
 && python docker/base_env.py pins > /etc/nemotron-base-pins.txt \
 && python docker/base_env.py missing . --exclude trl > /tmp/nemotron-missing.txt \
 && if [ -s /tmp/nemotron-missing.txt ]; then \
        uv pip install --python "$py" --no-cache -c /etc/nemotron-base-pins.txt -r /tmp/nemotron-missing.txt; \
    fi \
 && uv pip install --python "$py" --no-cache --no-deps -e . \
 && rm /tmp/nemotron-missing.txt \
 && python docker/base_env.py check /etc/nemotron-base-pins.txt \
 && test -f "$NEMO_RL_DIR/examples/run_grpo_math.py" \
 && python -c "import nemo_rl, nemotron.rl.nemo_rl as backend; backend.require(); print('nemo_rl at', nemo_rl.__file__)" \
 && mkdir -p /work \
 && chmod 1777 /work

WORKDIR /work
