# nemotron-gpu: nemotron on NVIDIA's PyTorch container, for data prep, pretraining, SFT and the
# TRL RL backend on GPUs (Megatron-Core with TransformerEngine, NCCL, bf16), e.g. on SLURM with
# `--run/--batch PROFILE`. The base ships CUDA torch and TransformerEngine built for each other;
# this image adds megatron-core 0.16.1 and nemotron without letting pip replace either.
#
#   docker build -f docker/gpu.Dockerfile -t nemotron-gpu .
#   enroot import -o nemotron-gpu.sqsh dockerd://nemotron-gpu     # SLURM + pyxis
FROM nvcr.io/nvidia/pytorch:25.09-py3

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /opt/nemotron
COPY . .

# 1. Pin the base's accelerator stack at the exact versions it ships (kept in the image: pass
#    `-c /etc/nemotron-base-pins.txt` to any later pip install), so no PyPI wheel replaces it.
# 2. Install megatron-core (pyproject's pin) and nemotron under those pins; editable, because
#    nemotron reads conf/ and recipes/ from its source tree (/opt/nemotron). Then the CUDA
#    kernels of the hybrid (Mamba-2) layers, built against the base's torch (no build isolation:
#    their build imports it), with no dependencies pip could swap.
# 3. Fail the build if a pinned package changed or TransformerEngine / Megatron-Core / the Mamba
#    kernels do not import.
# 4. /work: a working directory any uid can write (pyxis runs as the submitting user).
RUN python docker/base_env.py pins 'torch*' 'pytorch-triton*' triton 'transformer-engine*' \
        'flash-attn*' apex 'nvidia-*' 'cupy*' 'tensorrt*' numpy > /etc/nemotron-base-pins.txt \
 && PIP_BREAK_SYSTEM_PACKAGES=1 pip install --no-cache-dir -c /etc/nemotron-base-pins.txt \
        megatron-core==0.16.1 -e . \
 && PIP_BREAK_SYSTEM_PACKAGES=1 MAMBA_FORCE_BUILD=TRUE CAUSAL_CONV1D_FORCE_BUILD=TRUE pip install --no-cache-dir \
        --no-build-isolation --no-deps -c /etc/nemotron-base-pins.txt causal-conv1d==1.7.0 mamba-ssm==2.3.2.post1 \
 && python docker/base_env.py check /etc/nemotron-base-pins.txt \
 && python -c "import torch, transformer_engine, megatron.core, nemotron; print('torch', torch.__version__, 'with TransformerEngine and Megatron-Core')" \
 && python -c "from mamba_ssm.ops.triton.ssd_combined import mamba_split_conv1d_scan_combined; from causal_conv1d import causal_conv1d_fn; print('Mamba kernels')" \
 && mkdir -p /work \
 && chmod 1777 /work

WORKDIR /work
