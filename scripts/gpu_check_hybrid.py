"""The hybrid part of the GPU check (issue 15), run by ``scripts/gpu_check.py`` after the dense
part, in the same process:

1. each CUDA/Triton kernel the Mamba-2 mixer calls (mamba_ssm's ``mamba_chunk_scan_combined``
   and gated ``rmsnorm_fn``, causal-conv1d's ``causal_conv1d_fn``) against the pure-PyTorch
   reference of ``nemotron.train.ssm_reference`` on the same fp32 inputs (a kernel that is not
   installed is reported as absent, not failed);
2. a reduced-depth nano3 (the recipe's widths: hidden 2688, 64 Mamba heads, 128 experts top-6,
   GQA 32/2; 6 layers ``MEM*EM``) built by ``nemotron.train.models.build_chunks`` in bf16 and
   trained a few steps through nemotron's engine: loss finite and falling, tokens/s, memory.
   Without mamba_ssm the mixer runs on the reference kernels (on the GPU), and the row says so.

``--cpu-smoke`` runs both on CPU (the kernels are then all absent; the model is nano3_tiny).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PATTERN = "MEM*EM"
STEPS, WARMUP = 4, 1


def kernel_checks(table, cuda: bool) -> None:
    import torch

    from nemotron.train import ssm_reference

    device = torch.device("cuda" if cuda else "cpu")
    generator = torch.Generator(device="cpu").manual_seed(0)

    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, generator=generator) * scale).to(device)

    b, length, heads, head_dim, groups, state, chunk = 2, 200, 8, 32, 2, 64, 64  # 200: not a multiple of chunk
    x, dt = rand(b, length, heads, head_dim), rand(b, length, heads, scale=0.5)
    A, B, C = -torch.rand(heads, generator=generator).to(device) - 0.5, rand(b, length, groups, state), rand(b, length, groups, state)
    D, z, dt_bias = rand(heads), rand(b, length, heads, head_dim), rand(heads, scale=0.1)
    seq_idx = torch.zeros(b, length, dtype=torch.int32, device=device)
    seq_idx[:, 90:] = 1  # a packed boundary inside a chunk

    def scan(fn):
        return fn(x, dt, A, B, C, chunk, D=D, z=z, dt_bias=dt_bias, dt_softplus=True, seq_idx=seq_idx)

    channels, width = 96, 4
    # Channels last (stride 1 over channels): what the CUDA kernel needs for seq_idx.
    conv_x, conv_w, conv_b = rand(b, length, channels).transpose(1, 2), rand(channels, width), rand(channels)

    def conv(fn):
        return fn(conv_x, conv_w, conv_b, seq_idx=seq_idx, activation="silu")

    hidden, group_size = 128, 64
    norm_x, norm_z, norm_w = rand(b * length, hidden), rand(b * length, hidden), rand(hidden)

    def norm(fn):
        return fn(norm_x, norm_w, None, z=norm_z, eps=1e-5, group_size=group_size, norm_before_gate=False)

    kernels = {
        "kernel mamba_chunk_scan_combined": ("mamba_ssm.ops.triton.ssd_combined", "mamba_chunk_scan_combined", scan,
                                             ssm_reference.mamba_chunk_scan_combined, 5e-3),
        "kernel causal_conv1d_fn": ("causal_conv1d", "causal_conv1d_fn", conv, ssm_reference.causal_conv1d_fn, 1e-4),
        "kernel rmsnorm_fn (gated)": ("mamba_ssm.ops.triton.layernorm_gated", "rmsnorm_fn", norm,
                                      ssm_reference.rmsnorm_fn, 1e-4),
    }
    for name, (module, attribute, call, reference, tolerance) in kernels.items():
        real = _importable(module, attribute) if cuda else None
        if real is None:
            table.add(name, "info", "absent (not installed here): the CPU reference alone is tested")
            continue
        with torch.no_grad():
            got, want = call(real).float(), call(reference).float()
        diff = float((got - want).abs().max())
        table.check(name, math.isfinite(diff) and diff <= tolerance,
                    f"max |CUDA - reference| {diff:.2e} (tolerance {tolerance:g}; fp32, length 200, packed boundary)")


def _importable(module: str, attribute: str):
    import importlib

    try:
        return getattr(importlib.import_module(module), attribute)
    except Exception:  # noqa: BLE001 (an absent or broken kernel package is reported, not raised)
        return None


def model_check(table, cuda: bool, seed: int) -> None:
    import torch
    from omegaconf import OmegaConf

    from nemotron.schemas.model import ModelConfig
    from nemotron.schemas.optimizer import OptimizerConfig
    from nemotron.schemas.train import TrainConfig
    from nemotron.train import cpu_compat, distributed, engine
    from nemotron.train.models import build_chunks
    from nemotron.train.module_wrappers import unwrap

    if cuda:
        fields: dict[str, Any] = OmegaConf.to_container(OmegaConf.load(REPO / "conf/model/nano3.yaml"))
        fields.update(num_layers=len(PATTERN), hybrid_override_pattern=PATTERN, seq_length=2048, requires_gpu=False)
        vocab, micro, global_batch = 131072, 1, 2
    else:
        fields = OmegaConf.to_container(OmegaConf.load(REPO / "conf/model/nano3_tiny.yaml"))
        fields.update(seq_length=64)
        vocab, micro, global_batch = 512, 1, 2
    model = ModelConfig(**fields)
    train = TrainConfig(steps=STEPS, micro_batch_size=micro, global_batch_size=global_batch,
                        seq_length=model.seq_length, seed=seed, precision="bf16" if cuda else "fp32",
                        device="cuda" if cuda else "cpu", output_root="/tmp")
    optimizer = OptimizerConfig(name="adamw", lr=3e-4, min_lr=3e-5, warmup_steps=1, weight_decay=0.1, clip_grad=1.0)
    topo = distributed.initialize(1, seed, cuda)
    try:
        kernels = "mamba_ssm"
        if cuda and _importable("mamba_ssm.ops.triton.ssd_combined", "mamba_split_conv1d_scan_combined") is None:
            cpu_compat._apply_mamba_reference_kernels()  # the reference kernels, on the GPU
            kernels = "reference kernels (mamba_ssm absent)"
        elif not cuda:
            kernels = "reference kernels"
        built = time.perf_counter()
        chunks = build_chunks(model, vocab, train, cuda, cuda)
        run = engine.build(chunks, train, optimizer, cuda, STEPS)
        built = time.perf_counter() - built
        hybrid = unwrap(run.chunks[0])
        total = sum(p.numel() for p in hybrid.parameters())
        kinds = {type(layer).__name__ for layer in hybrid.decoder.layers}  # Mamba, attention, MoE (, MLP)
        table.check("hybrid model", type(hybrid).__name__ in ("MambaModel", "HybridModel") and len(kinds) >= 3,
                    f"{type(hybrid).__name__} {PATTERN if cuda else model.hybrid_override_pattern}, hidden "
                    f"{model.hidden_size}, {model.num_moe_experts} experts, {total:,} parameters, "
                    f"{'bf16' if cuda else 'fp32'}, {kernels}, {len(kinds)} layer kinds, built in {built:.1f} s")
        seq = model.seq_length
        generator = torch.Generator().manual_seed(seed)

        def batches(split, first, size, device):
            tokens = torch.randint(0, vocab, (size, seq + 1), generator=generator)
            return {"tokens": tokens[:, :-1].to(device), "labels": tokens[:, 1:].to(device),
                    "loss_mask": torch.ones(size, seq, device=device),
                    "position_ids": torch.arange(seq, device=device).expand(size, -1),
                    "attention_mask": None}

        losses, times = [], []
        for n in range(1, STEPS + 1):
            if cuda:
                torch.cuda.synchronize()
            started = time.perf_counter()
            firsts = [(n - 1) * global_batch + k * micro for k in range(global_batch // micro)]
            loss, _, _ = engine.train_step(run, batches, firsts, micro, seq, topo, n)
            if cuda:
                torch.cuda.synchronize()
            losses.append(loss)
            times.append(time.perf_counter() - started)
        table.check("hybrid train", all(math.isfinite(x) for x in losses) and losses[-1] < losses[0],
                    f"{STEPS} steps, loss {losses[0]:.4f} -> {losses[-1]:.4f} (must fall, finite)")
        timed = times[WARMUP:]
        table.add("hybrid tokens/s", "info", f"{global_batch * seq * len(timed) / sum(timed):,.0f} "
                                             f"({sum(timed) / len(timed):.3f} s per step of {global_batch * seq} tokens)"
                  + (f", peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if cuda else ""))
    finally:
        distributed.shutdown()


def run_hybrid_checks(table, cuda: bool, seed: int, port: int) -> None:
    import os

    os.environ["MASTER_PORT"] = str(port)  # a fresh process group after the dense part's
    kernel_checks(table, cuda)
    model_check(table, cuda, seed)
