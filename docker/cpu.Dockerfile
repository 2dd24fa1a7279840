# nemotron-cpu: the whole tiny pipeline (README's main job, `nemotron nano3 pipe`) on a CPU, no GPU
# needed. Python 3.11 (so pip picks megatron-core 0.16.1), the CPU build of torch from PyTorch's
# CPU wheel index at the release constraints/cpu.txt pins (never a CUDA build), and nemotron
# installed as scripts/setup.sh does. Runs as uid 1000 (or any --user); artifacts/, data/ and runs/
# land in /work.
#
#   docker build -f docker/cpu.Dockerfile -t nemotron-cpu .
#   mkdir -p out && docker run --rm --shm-size=1g --user "$(id -u):$(id -g)" -v "$PWD/out:/work" nemotron-cpu
#   enroot import -o nemotron-cpu.sqsh dockerd://nemotron-cpu           # SLURM + pyxis
FROM python:3.11-slim

WORKDIR /opt/nemotron

# torch first, in its own layer, so code changes do not download it again.
COPY constraints/cpu.txt constraints/cpu.txt
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu -c constraints/cpu.txt torch==2.13.0

# Editable: nemotron reads conf/ and recipes/ from its source tree (/opt/nemotron).
# /work is writable by any uid (docker run --user, enroot), the default user is uid 1000.
COPY . .
RUN pip install --no-cache-dir -c constraints/cpu.txt -e . \
 && python -c "import torch; assert torch.version.cuda is None, f'CUDA torch {torch.__version__}'" \
 && useradd --create-home --uid 1000 nemotron \
 && mkdir -p /work \
 && chown 1000:1000 /work \
 && chmod 1777 /work

# Caches in /tmp, so any uid (whose HOME may be / or unwritable) can run it.
ENV XDG_CACHE_HOME=/tmp/.cache \
    MPLCONFIGDIR=/tmp/.cache/matplotlib
USER 1000:1000
WORKDIR /work
CMD ["nemotron", "nano3", "pipe"]
