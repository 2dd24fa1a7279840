"""The GPU check (issue 14): nemotron's own training engine on one GPU, world size 1.

What it runs, in order (every step through nemotron's code, nothing re-implemented):

1. versions: torch, CUDA, NCCL, TransformerEngine ("absent" when not installed), megatron-core;
2. a dense ~1.1B-parameter Llama-style GPT (16 layers, hidden 2048, GQA 16/8, SwiGLU 8192,
   sequence 2048) in bf16, built by ``nemotron.train.models.build_chunks`` (TransformerEngine's
   layer spec when it is installed, Megatron-Core's local spec otherwise) and wrapped by
   ``nemotron.train.engine.build`` with the distributed optimizer on, after
   ``nemotron.train.distributed.initialize``;
3. ``STEPS`` optimizer steps (``engine.train_step``) on synthetic tokens, timed after a
   warm-up: tokens/s and MFU against the GPU's peak dense bf16 rate;
4. a distributed checkpoint of model and optimizer (``nemotron.train.checkpoint.save``), two
   more steps without a reload (the reference), then ``checkpoint.load`` of it into the same
   engine: weights and optimizer state must come back bit for bit, and the same two steps
   must give the reference's losses.

5. the hybrid part (``scripts/gpu_check_hybrid.py``): the Mamba-2 kernels against the CPU
   reference implementations, and a reduced-depth nano3 trained a few steps in bf16.

It prints one table (check, result, value), also written to ``--out``, and exits non-zero on
any failure. ``--cpu-smoke`` runs the same path on CPU with a tiny model (2 layers, hidden 64,
3 steps, fp32) so the tests cover the logic. On the GPU machine it runs through
``scripts/gpu-check.sh`` (which installs the wheels of ``scripts/gpu-wheels.sh``).

Over 400 lines on purpose: it is one self-contained program carried to a machine with no
network and run once per lent GPU; splitting it would mean carrying and wiring several files.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "scripts"):  # the device machine runs a copy of the tree, not an install
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


@dataclass(frozen=True)
class Size:
    model: dict[str, Any]
    vocab_size: int
    steps: int  # timed training steps before the checkpoint
    warmup: int  # steps left out of the throughput
    micro_batch_size: int
    global_batch_size: int
    lr: float
    # Largest relative loss difference accepted after the reload, at the first and second step:
    # the first forward sees bit-identical weights; the second follows a backward whose
    # reductions a GPU may order differently (CPU runs are bitwise: tests/nemotron/train).
    loss_rtol: tuple[float, float] = (0.0, 0.0)


# ~1.1B parameters: 16 x 62.9M in the layers + 2 x 65.5M embedding and output (vocab 32000).
GPU = Size(
    model=dict(name="gpu-check-1b", num_layers=16, hidden_size=2048, ffn_hidden_size=8192, num_attention_heads=16,
               num_query_groups=8, seq_length=2048),
    vocab_size=32000, steps=30, warmup=5, micro_batch_size=4, global_batch_size=8, lr=3.0e-4,
    loss_rtol=(1e-6, 1e-4),
)
SMOKE = Size(
    model=dict(name="gpu-check-smoke", num_layers=2, hidden_size=64, ffn_hidden_size=176, num_attention_heads=4,
               num_query_groups=2, seq_length=64),
    vocab_size=512, steps=3, warmup=1, micro_batch_size=2, global_batch_size=4, lr=3.0e-3,
)
EXTRA_STEPS = 2  # after the checkpoint: run without and with the reload
SEED = 1234

# Peak dense bf16 tensor-core rate (no sparsity), TFLOP/s, by a piece of torch's device name;
# the first match wins (so "H100 PCIe" before "H100", "L40S" before "L40" before "L4").
PEAK_BF16_TFLOPS = (
    ("GH200", 989.0), ("H200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0),
    ("H800", 989.0), ("B200", 2250.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0), ("L40", 181.0),
    ("L4", 121.0),
)


@dataclass
class Table:
    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, check: str, result: str, value: Any) -> None:
        self.rows.append((check, result, str(value)))
        print(f"[gpu-check] {check}: {result}  {value}", flush=True)

    def check(self, name: str, passed: bool, value: Any) -> bool:
        self.add(name, "ok" if passed else "FAIL", value)
        return passed

    @property
    def failed(self) -> bool:
        return any(result == "FAIL" for _, result, _ in self.rows)

    def render(self) -> str:
        rows = [("check", "result", "value"), *self.rows]
        widths = [max(len(row[i]) for row in rows) for i in range(2)]
        lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}" for a, b, c in rows]
        lines.insert(1, f"{'-' * widths[0]}  {'-' * widths[1]}  {'-' * 5}")
        return "\n".join(lines)


def peak_bf16_flops(device_name: str) -> float | None:
    for piece, tflops in PEAK_BF16_TFLOPS:
        if piece.lower() in device_name.lower():
            return tflops * 1e12
    return None


def flops_per_token(matmul_params: int, num_layers: int, attention_width: int, seq_length: int) -> float:
    """Model FLOPs of one trained token (forward + backward), the PaLM paper's estimate
    (Chowdhery et al. 2022, appendix B): ``6 * N + 12 * L * h_attn * s``, where ``N`` counts
    the parameters in matrix multiplies (every parameter except the input embedding table;
    the output layer's matrix counted even when tied), ``L`` layers, ``h_attn`` = heads x
    head dimension, ``s`` the sequence length (the attention scores and their weighted sum,
    counted over the full s x s square as is the convention, causal or not). Recomputation
    is not counted: this is MFU, not hardware FLOPs utilization."""
    return 6.0 * matmul_params + 12.0 * num_layers * attention_width * seq_length


def synthetic_batches(vocab_size: int, seq_length: int, seed: int):
    """A batch source (``engine.BatchFn``) of learnable synthetic tokens: sample ``i`` walks
    ``x[t+1] = x[t] + 7 (mod A)`` over the first ``A`` ids from a random start, a quarter of
    the tokens replaced by random ones, so the loss falls from ln(vocab) as the model learns
    the walk. Sample ``i`` is the same whenever it is asked for (a reload repeats it)."""
    import torch

    active = min(1024, vocab_size // 2)
    masks: dict[Any, torch.Tensor] = {}

    def sample(index: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed * 1_000_003 + index)
        start = torch.randint(active, (1,), generator=g)
        walk = (start + 7 * torch.arange(seq_length + 1)) % active
        noise = torch.randint(active, (seq_length + 1,), generator=g)
        return torch.where(torch.rand(seq_length + 1, generator=g) < 0.25, noise, walk)

    def batches(split: str, first: int, size: int, device) -> dict[str, torch.Tensor] | None:
        if split != "train":
            return None
        x = torch.stack([sample(first + i) for i in range(size)])
        if device not in masks:  # the causal mask, as nemotron.train.pretrain_data.batch gives it
            masks[device] = torch.triu(torch.ones(1, 1, seq_length, seq_length, dtype=torch.bool, device=device),
                                       diagonal=1)
        return {"tokens": x[:, :-1].to(device), "labels": x[:, 1:].to(device),
                "loss_mask": torch.ones(size, seq_length, dtype=torch.float32, device=device),
                "position_ids": torch.arange(seq_length, device=device).expand(size, seq_length).contiguous(),
                "attention_mask": masks[device]}

    return batches


def versions(table: Table, cuda: bool) -> None:
    import torch

    table.add("torch", "info", torch.__version__)
    if cuda:
        table.check("CUDA", torch.cuda.is_available(), f"{torch.version.cuda}, device visible: {torch.cuda.is_available()}")
        table.add("GPU", "info", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")
        try:
            nccl = torch.cuda.nccl.version()
            nccl = ".".join(str(v) for v in nccl) if isinstance(nccl, tuple) else str(nccl)
        except Exception as err:  # noqa: BLE001 (a build without NCCL)
            nccl = f"unavailable ({err})"
        table.add("NCCL", "info", nccl)
    else:
        table.add("CUDA", "info", f"{torch.version.cuda or 'none'} (cpu smoke: not used)")
        table.add("NCCL", "info", "not used (cpu smoke: gloo)")
    table.add("TransformerEngine", "info", _package_version("transformer_engine", "transformer-engine",
                                                            "transformer_engine_torch") or "absent")
    table.add("megatron-core", "info", _package_version("megatron.core", "megatron-core") or "absent")


def _package_version(module: str, *distributions: str) -> str | None:
    import importlib.metadata

    try:
        if importlib.util.find_spec(module) is None:
            return None
    except ModuleNotFoundError:
        return None
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "installed (version unknown)"


def _micro_firsts(start: int, accumulation: int, micro_batch_size: int) -> list[int]:
    """Where the micro-batches of the global batch at sample ``start`` begin (one data-parallel
    rank: nemotron.train.loop's order)."""
    return [start + micro * micro_batch_size for micro in range(accumulation)]


def _weights(chunks: list, copy: bool = True) -> dict[str, Any]:
    from nemotron.train.module_wrappers import unwrap

    return {f"{i}.{name}": _copied(p, copy) for i, chunk in enumerate(chunks)
            for name, p in unwrap(chunk).named_parameters()}


def _copied(tensor, copy: bool):
    """A copy to compare against later, or the live tensor (a comparison now needs none)."""
    return tensor.detach().clone() if copy else tensor.detach()


def _optimizer_state(optimizer, copy: bool = True) -> list[tuple[str, Any]]:
    """The inner optimizers' main parameters and per-parameter state, in order (with the
    distributed optimizer: this rank's fp32 shards and their Adam moments and step)."""
    out = []
    for j, sub in enumerate(getattr(optimizer, "chained_optimizers", [optimizer])):
        inner = sub.optimizer
        for g, group in enumerate(inner.param_groups):
            for k, param in enumerate(group["params"]):
                out.append((f"{j}.{g}.{k}.param", _copied(param, copy)))
                for key, value in sorted(inner.state.get(param, {}).items()):
                    if hasattr(value, "detach"):
                        out.append((f"{j}.{g}.{k}.{key}", _copied(value, copy)))
    return out


def _differing(before, after) -> list[str]:
    import torch

    before, after = dict(before), dict(after)
    names = sorted(set(before) | set(after))
    return [n for n in names if n not in before or n not in after
            or not torch.equal(before[n], after[n].to(before[n].device))]


def run_checks(size: Size, cuda: bool, table: Table, workdir: Path) -> None:
    import torch

    from nemotron.schemas.model import ModelConfig, architecture_of
    from nemotron.schemas.optimizer import OptimizerConfig
    from nemotron.schemas.train import TrainConfig
    from nemotron.train import checkpoint as ckpt
    from nemotron.train import distributed, engine
    from nemotron.train.models import build_chunks
    from nemotron.train.module_wrappers import unwrap
    from nemotron.train.param_count import count_parameters

    versions(table, cuda)
    if cuda and not torch.cuda.is_available():
        raise RuntimeError("no CUDA device is visible")
    bf16 = cuda
    total_steps = size.steps + EXTRA_STEPS
    model = ModelConfig(**size.model)
    seq = model.seq_length
    train = TrainConfig(steps=total_steps, micro_batch_size=size.micro_batch_size,
                        global_batch_size=size.global_batch_size, seq_length=seq, seed=SEED,
                        use_distributed_optimizer=True, precision="bf16" if bf16 else "fp32",
                        device="cuda" if cuda else "cpu", output_root=str(workdir))
    optimizer = OptimizerConfig(name="adamw", lr=size.lr, min_lr=size.lr / 10, warmup_steps=size.warmup,
                                weight_decay=0.1, clip_grad=1.0)

    topo = distributed.initialize(train.tensor_parallel, train.seed, cuda)
    try:
        if not table.check("world", topo.world_size == 1 and topo.dp_size == 1,
                           f"world size {topo.world_size}, data parallel {topo.dp_size}, device {topo.device}"):
            return
        built = time.perf_counter()
        chunks = build_chunks(model, size.vocab_size, train, cuda, bf16)
        run = engine.build(chunks, train, optimizer, bf16, total_steps)
        built = time.perf_counter() - built
        gpt = unwrap(run.chunks[0])
        total = sum(p.numel() for chunk in run.chunks for p in unwrap(chunk).parameters())
        embedding = gpt.embedding.word_embeddings.weight
        matmul = total - embedding.numel() + (0 if model.untie_embeddings_and_output_weights else embedding.numel())
        expected = count_parameters(model.model_dump(), size.vocab_size).total
        qkv = type(gpt.decoder.layers[0].self_attention.linear_qkv).__name__
        spec = "TransformerEngine" if qkv.startswith("TE") else "Megatron-Core local"
        te_wanted = cuda and importlib.util.find_spec("transformer_engine") is not None
        optimizers = [type(sub).__name__ for sub in getattr(run.optimizer, "chained_optimizers", [run.optimizer])]
        table.check("model", total == expected and (spec == "TransformerEngine") == te_wanted
                    and set(optimizers) == {"DistributedOptimizer"},
                    f"{model.num_layers} layers, hidden {model.hidden_size}, {total:,} parameters (nemotron's count: "
                    f"{expected:,}), {'bf16' if bf16 else 'fp32'}, {spec} spec ({qkv}), {' + '.join(optimizers)}, "
                    f"built in {built:.1f} s")

        batches = synthetic_batches(size.vocab_size, seq, SEED)
        accumulation = size.global_batch_size // size.micro_batch_size
        tokens_per_step = size.global_batch_size * seq

        def step(n: int) -> tuple[float, float]:
            firsts = _micro_firsts((n - 1) * size.global_batch_size, accumulation, size.micro_batch_size)
            if cuda:
                torch.cuda.synchronize()
            started = time.perf_counter()
            loss, _, _ = engine.train_step(run, batches, firsts, size.micro_batch_size, seq, topo, n)
            if cuda:
                torch.cuda.synchronize()
            return loss, time.perf_counter() - started

        losses, times = [], []
        for n in range(1, size.steps + 1):
            loss, seconds = step(n)
            losses.append(loss)
            times.append(seconds)
        finite = all(math.isfinite(x) for x in losses)
        table.check("train", finite and losses[-1] < losses[0],
                    f"{size.steps} steps, loss {losses[0]:.4f} -> {losses[-1]:.4f} (must fall, finite)")
        timed = times[size.warmup:]
        tokens_per_s = tokens_per_step * len(timed) / sum(timed)
        table.add("tokens/s", "info", f"{tokens_per_s:,.0f} (steps {size.warmup + 1}-{size.steps}, "
                                      f"{tokens_per_step} tokens per step, {sum(timed) / len(timed):.3f} s per step)")
        per_token = flops_per_token(matmul, model.num_layers,
                                    model.num_attention_heads * (model.kv_channels or
                                                                 model.hidden_size // model.num_attention_heads), seq)
        name = torch.cuda.get_device_name() if cuda else "cpu"
        peak = peak_bf16_flops(name) if cuda else None
        achieved = tokens_per_s * per_token
        if peak:
            table.add("MFU", "info", f"{100 * achieved / peak:.1f}% ({achieved / 1e12:.1f} of {peak / 1e12:.0f} "
                                     f"TFLOP/s peak bf16; {per_token / 1e9:.2f} GFLOP/token = 6N + 12*L*h*s)")
        else:
            table.add("MFU", "info", f"n/a (no peak bf16 rate known for {name!r}; "
                                     f"{achieved / 1e12:.3f} TFLOP/s achieved)")
        if cuda:
            table.add("peak memory", "info", f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB allocated")

        # Checkpoint at the last timed step; two reference steps; reload; the same two steps.
        root = workdir / "checkpoints"
        layout = {**topo.layout, "distributed_optimizer": train.use_distributed_optimizer}
        state = ckpt.TrainerState(step=size.steps, consumed_samples=size.steps * size.global_batch_size,
                                  tokens_seen=size.steps * tokens_per_step, tp_size=topo.tp_size,
                                  world_size=topo.world_size,
                                  architecture=architecture_of(model.model_dump(exclude_unset=True)), layout=layout)
        weights, optimizer_state = _weights(run.chunks), _optimizer_state(run.optimizer)
        started = time.perf_counter()
        saved = ckpt.save(root, state, run.chunks, run.optimizer, distributed.rng_state(), topo.rank)
        seconds = time.perf_counter() - started
        written = sum(f.stat().st_size for f in saved.rglob("*") if f.is_file())
        table.check("checkpoint save", ckpt.find_latest(root) == saved,
                    f"{saved.name}: {written / 2**30:.2f} GiB in {seconds:.1f} s")
        reference = [step(size.steps + k)[0] for k in range(1, EXTRA_STEPS + 1)]

        started = time.perf_counter()
        resharded = ckpt.load(saved, run, layout, topo.rank)
        table.check("checkpoint load", not resharded,
                    f"{time.perf_counter() - started:.1f} s, {'resharded (unexpected)' if resharded else 'same layout'}")
        bad = _differing(weights, _weights(run.chunks, copy=False))
        table.check("weights after reload", not bad,
                    f"bit-identical ({len(weights)} tensors)" if not bad else f"{len(bad)} of {len(weights)} "
                    f"tensors differ: {', '.join(bad[:3])}")
        bad = _differing(optimizer_state, _optimizer_state(run.optimizer, copy=False))
        table.check("optimizer state after reload", not bad,
                    f"bit-identical ({len(optimizer_state)} tensors: main parameters, moments, steps)" if not bad
                    else f"{len(bad)} of {len(optimizer_state)} tensors differ: {', '.join(bad[:3])}")
        del weights, optimizer_state
        for k in range(1, EXTRA_STEPS + 1):
            n = size.steps + k
            again, _ = step(n)
            want = reference[k - 1]
            rtol = size.loss_rtol[k - 1]
            diff = abs(again - want)
            table.check(f"loss of step {n} after reload", math.isfinite(again) and diff <= rtol * abs(want),
                        f"{again:.7f} vs {want:.7f} without the reload (difference {diff:.2e}, "
                        f"{'must be 0' if rtol == 0 else f'tolerance {rtol:g} relative'})")
    finally:
        try:
            distributed.shutdown()
        except Exception:  # noqa: BLE001 (a failed run may leave the group unusable; the table says why)
            traceback.print_exc()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _timed_out(signum, frame):  # noqa: ARG001
    raise TimeoutError(f"stopped by signal {signum} (the run went past its time limit)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="the same path on CPU with a tiny model, 3 steps")
    parser.add_argument("--out", type=Path, help="also write the table here (default: $OUT/gpu-check.txt if OUT is set)")
    parser.add_argument("--workdir", type=Path, help="where the checkpoint goes (default: a temporary directory)")
    args = parser.parse_args(argv)

    # One process, world size 1, whatever the environment says.
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(_free_port()))
    signal.signal(signal.SIGTERM, _timed_out)  # `timeout` in gpu-check.sh: still print the table
    out = args.out or (Path(os.environ["OUT"]) / "gpu-check.txt" if os.environ.get("OUT") else None)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    cuda = not args.cpu_smoke

    from nemotron.train.megatron_warnings import silence_megatron_warnings

    silence_megatron_warnings()
    table = Table()
    started = time.perf_counter()
    try:
        import torch

        if not cuda:
            torch.set_num_threads(1)  # a tiny model: threads only cost the machine's other work
        run_checks(SMOKE if args.cpu_smoke else GPU, cuda, table, workdir)
        from gpu_check_hybrid import run_hybrid_checks

        run_hybrid_checks(table, cuda, SEED, _free_port())
    except BaseException as err:  # noqa: BLE001 (every failure ends as a row of the table)
        traceback.print_exc()
        table.add("run", "FAIL", f"{type(err).__name__}: {err}"[:300])
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    table.add("time", "info", f"{time.perf_counter() - started:.1f} s ({'cpu smoke' if args.cpu_smoke else 'gpu'})")
    if not table.failed and len([r for r in table.rows if r[1] == "ok"]) < 9:
        table.add("run", "FAIL", "fewer checks ran than planned")
    text = table.render()
    print("\n" + text + "\n" + ("GPU CHECK FAILED" if table.failed else "GPU CHECK PASSED"), flush=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    return 1 if table.failed else 0


if __name__ == "__main__":
    sys.exit(main())
