"""Training-step overhead: nemotron's training loop against a bare Megatron-Core loop.

The same tiny Llama-style GPT (RoPE, RMSNorm, SwiGLU, GQA, 2048-token vocabulary), the same
seed, the same synthetic token batches and the same micro-batching, for the same steps:

  ours  nemotron.train.loop.train(job, batches_for): the whole loop of a training run
        (distributed.initialize, build_chunks, engine.build, engine.train_step, the metrics
        file, progress, result record), on CPU in one process (gloo, world size 1)
  bare  a loop written here (``run_bare``) that calls Megatron-Core directly: GPTModel with the
        local layer spec, DistributedDataParallel, get_megatron_optimizer,
        OptimizerParamScheduler, get_forward_backward_func, finalize_model_grads. It borrows
        from nemotron only the TransformerConfig (nemotron.train.transformer_config) and
        the CPU patches and seeding any CPU run of Megatron-Core needs (nemotron.train.cpu_compat)

Each side lives in its own child process (multiprocessing spawn), which imports once and
then runs its side whenever the parent asks; the parent alternates them (bare, ours, bare,
ours, ...) for --repeat rounds and the fastest run of each side counts. A run builds everything
afresh (process group, model, optimizer) and does warmup + steps + 1 steps; the timed window is
the ``steps`` steps after the warmup, from the first batch read of step warmup+1 to the first
of the last step, so it holds full loop iterations only (each one's metrics line included).
The last step, which in ours also evaluates (no validation split here: a no-op) and saves the
run's one checkpoint (checkpoint_interval=0), is outside it, as are start-up and build; the
"run s" column is the whole run, build, checkpoint save and loss plot included. Peak RSS
(ru_maxrss, per child) is reported at the end of the first run's timed steps (imports, build,
warmup, steps) and for the whole child (ours: its checkpoint saves and loss plots included).
Both sides must reach the same final loss: they compute the same steps.

    .venv/bin/python benchmarks/train_overhead.py [--steps 50] [--warmup 3] [--repeat 3] [--threads 1]
        [--layers 2] [--hidden 64] [--seq 128] [--micro-batch 2] [--global-batch 4]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import socket
import tempfile
import time
from pathlib import Path

VOCAB = 2048  # the tiny-bpe tokenizer's; a multiple of 128, so no padding on either side
SEED = 1234


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def job_sections(args: argparse.Namespace, run_dir: str) -> dict:
    """The training job both sides run, as the sections of nemotron's TrainingJob."""
    heads = max(1, args.hidden // 16)
    model = {"name": "bench", "num_layers": args.layers, "hidden_size": args.hidden,
             "ffn_hidden_size": 16 * math.ceil(args.hidden * 8 / 3 / 16), "num_attention_heads": heads,
             "num_query_groups": max(1, heads // 2), "seq_length": args.seq}
    train = {"steps": args.warmup + args.steps + 1, "micro_batch_size": args.micro_batch,
             "global_batch_size": args.global_batch, "seed": SEED, "checkpoint_interval": 0, "eval_interval": 0,
             "device": "cpu", "precision": "fp32", "output_root": run_dir}
    optimizer = {"name": "adamw", "lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 4, "weight_decay": 0.01,
                 "clip_grad": 1.0}  # conf/optimizer/adamw.yaml
    return {"stage": "pretrain", "run_dir": run_dir, "model": model, "train": train, "optimizer": optimizer,
            "data": {"vocab_size": VOCAB}, "show_progress": False}


class Window:
    """Wraps a batch function: notes the time, CPU time and peak RSS when the first micro-batch
    of the first timed step and of the first untimed step after them is read."""

    def __init__(self, batch_fn, starts: tuple[int, int]):
        self.batch_fn, self.starts, self.marks = batch_fn, starts, {}

    def __call__(self, split, first, size, device):
        if split == "train" and first in self.starts and first not in self.marks:
            import resource

            times = os.times()
            self.marks[first] = (time.perf_counter(), times.user + times.system,
                                 resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        return self.batch_fn(split, first, size, device)

    def read(self) -> dict:
        (wall0, cpu0, _), (wall1, cpu1, rss) = (self.marks[s] for s in self.starts)
        return {"wall": wall1 - wall0, "cpu": cpu1 - cpu0, "rss_kib": rss}


def synthetic_batches(seq: int):
    """Sample i: seq+1 tokens drawn from a generator seeded with SEED + i (no validation split)."""
    import torch

    mask = torch.triu(torch.ones(1, 1, seq, seq, dtype=torch.bool), diagonal=1)
    positions = torch.arange(seq)

    def batches(split, first, size, device):
        if split != "train":
            return None
        rows = [torch.randint(0, VOCAB, (seq + 1,), generator=torch.Generator().manual_seed(SEED + i))
                for i in range(first, first + size)]
        tokens = torch.stack(rows)
        return {"tokens": tokens[:, :-1].contiguous(), "labels": tokens[:, 1:].contiguous(),
                "loss_mask": torch.ones(size, seq), "position_ids": positions.expand(size, seq).contiguous(),
                "attention_mask": mask}

    return batches


# -- ours -------------------------------------------------------------------------------------

def run_ours(sections: dict, window: Window) -> float:
    from nemo_runspec.schema import validate
    from nemotron.schemas.job import TrainingJob
    from nemotron.train.loop import train

    result = train(validate(TrainingJob, sections, "job"), lambda job, topo: window)
    return result["final_loss"]


# -- bare: Megatron-Core's engine pieces, called directly ---------------------------------------

def run_bare(sections: dict, window: Window) -> float:
    import torch
    from megatron.core import parallel_state
    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig, finalize_model_grads
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
    from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler
    from megatron.core.pipeline_parallel import get_forward_backward_func

    from nemotron.schemas.model import ModelConfig
    from nemotron.schemas.train import TrainConfig
    from nemotron.train import cpu_compat
    from nemotron.train.transformer_config import transformer_config

    model, train, opt = (ModelConfig.model_validate(sections["model"]),
                         TrainConfig.model_validate(sections["train"]), sections["optimizer"])
    cpu_compat.apply()  # Megatron-Core's CUDA-only spots, as every CPU run needs them
    torch.distributed.init_process_group("gloo", rank=0, world_size=1)
    parallel_state.initialize_model_parallel()
    cpu_compat.manual_seed(train.seed, 0)  # model_parallel_cuda_manual_seed's CPU twin

    config = transformer_config(model, 1, False, train)
    gpt = GPTModel(config=config, transformer_layer_spec=get_gpt_layer_local_spec(normalization="RMSNorm"),
                   vocab_size=VOCAB, max_sequence_length=model.seq_length, position_embedding_type="rope",
                   share_embeddings_and_output_weights=False)
    ddp = DistributedDataParallel(config, DistributedDataParallelConfig(grad_reduce_in_fp32=True), gpt)
    optimizer = get_megatron_optimizer(OptimizerConfig(
        optimizer="adam", lr=opt["lr"], min_lr=opt["min_lr"], weight_decay=opt["weight_decay"], adam_beta1=0.9,
        adam_beta2=0.95, adam_eps=1e-8, decoupled_weight_decay=True, clip_grad=opt["clip_grad"]), [ddp])
    scheduler = OptimizerParamScheduler(
        optimizer, init_lr=0.0, max_lr=opt["lr"], min_lr=opt["min_lr"], lr_warmup_steps=opt["warmup_steps"],
        lr_decay_steps=train.steps, lr_decay_style="cosine", start_wd=opt["weight_decay"],
        end_wd=opt["weight_decay"], wd_incr_steps=train.steps, wd_incr_style="constant")
    config.finalize_model_grads_func = finalize_model_grads
    forward_backward = get_forward_backward_func()
    micro, accumulation = train.micro_batch_size, train.global_batch_size // train.micro_batch_size

    def forward_step(data, model):
        batch = next(data)
        output = model(batch["tokens"], batch["position_ids"], batch["attention_mask"], labels=batch["labels"])

        def loss_func(output_tensor):
            mask = batch["loss_mask"]
            loss = (output_tensor.float() * mask).sum() / mask.sum()
            return loss, {"loss": loss.detach().clone()}

        return output, loss_func

    loss = None
    for step in range(train.steps):
        start = step * train.global_batch_size
        data = (window("train", start + m * micro, micro, None) for m in range(accumulation))
        ddp.zero_grad_buffer()
        optimizer.zero_grad()
        scheduler.step(1)
        outputs = forward_backward(forward_step_func=forward_step, data_iterator=data, model=ddp,
                                   num_microbatches=accumulation, seq_length=model.seq_length,
                                   micro_batch_size=micro, forward_only=False)
        optimizer.step()
        loss = float(torch.stack([out["loss"] for out in outputs]).mean())
    parallel_state.destroy_model_parallel()
    torch.distributed.destroy_process_group()
    return loss


# -- the runs of one side, in a child process --------------------------------------------------

def child(side: str, args: argparse.Namespace, conn) -> None:
    """Imports once, then runs ``side`` each time the parent sends a free port (None: stop)."""
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
    from nemotron.train.megatron_warnings import silence_megatron_warnings

    silence_megatron_warnings()
    import resource

    import torch

    torch.set_num_threads(args.threads)
    run = run_ours if side == "ours" else run_bare
    while (port := conn.recv()) is not None:
        os.environ["MASTER_PORT"] = str(port)
        with tempfile.TemporaryDirectory(prefix="train-overhead-") as tmp:
            (Path(tmp) / "run").mkdir()  # the stage step makes the run directory before training
            sections = job_sections(args, str(Path(tmp) / "run"))
            starts = (args.warmup * args.global_batch, (args.warmup + args.steps) * args.global_batch)
            window = Window(synthetic_batches(args.seq), starts)
            started = time.perf_counter()
            final_loss = run(sections, window)
            total = time.perf_counter() - started
        conn.send({**window.read(), "total": total, "final_loss": final_loss,
                   "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss})
    conn.close()


class Side:
    """A child process (spawned: its own peak RSS) that runs one side on request."""

    def __init__(self, name: str, args: argparse.Namespace):
        ctx = multiprocessing.get_context("spawn")
        self.name, (self.conn, theirs) = name, ctx.Pipe()
        self.proc = ctx.Process(target=child, args=(name, args, theirs))
        self.proc.start()
        theirs.close()

    def run(self) -> dict:
        self.conn.send(free_port())
        try:
            return self.conn.recv()
        except EOFError:
            self.proc.join()
            raise SystemExit(f"the {self.name} run failed (exit status {self.proc.exitcode})") from None

    def close(self) -> None:
        self.conn.send(None)
        self.proc.join()


def param_count(args: argparse.Namespace) -> int:
    sections = job_sections(args, "")["model"]
    h, f, layers = args.hidden, sections["ffn_hidden_size"], args.layers
    heads, groups = sections["num_attention_heads"], sections["num_query_groups"]
    kv = h // heads * groups
    per_layer = h * (h + 2 * kv) + h * h + 3 * h * f + 2 * h  # qkv, proj, gated fc1 + fc2, two norms
    return 2 * VOCAB * h + layers * per_layer + h  # untied embedding and output layer, final norm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before them")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side, alternating; the fastest counts")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (OMP_NUM_THREADS) in each run")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--micro-batch", type=int, default=2)
    parser.add_argument("--global-batch", type=int, default=4)
    args = parser.parse_args()
    if args.global_batch % args.micro_batch:
        parser.error("--global-batch must be a multiple of --micro-batch")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the children inherit it

    tokens_per_step = args.global_batch * args.seq
    print(f"{os.cpu_count()} CPUs, load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"model: {args.layers} layers, hidden {args.hidden}, seq {args.seq}, vocab {VOCAB}, "
          f"{param_count(args) / 1e6:.2f}M parameters; micro-batch {args.micro_batch}, global batch "
          f"{args.global_batch} ({args.global_batch // args.micro_batch} micro-batches/step), fp32 on CPU, "
          f"{args.threads} thread(s)")
    print(f"each run: {args.warmup} warmup + {args.steps} timed steps + 1 final step (ours: its checkpoint "
          f"save); {args.repeat} round(s), bare then ours, each side in its own process")
    print(f"{'run':8s} {'steps/s':>8s} {'tokens/s':>9s} {'cpu/wall':>8s} {'run s':>6s} {'final loss':>11s}")
    sides = {name: Side(name, args) for name in ("bare", "ours")}
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    for round_ in range(args.repeat):
        for name, side in sides.items():
            run = side.run()
            run["steps_s"] = args.steps / run["wall"]
            runs[name].append(run)
            print(f"{name}-{round_ + 1:<3d} {run['steps_s']:8.2f} {run['steps_s'] * tokens_per_step:9,.0f} "
                  f"{run['cpu'] / run['wall']:8.2f} {run['total']:6.2f} {run['final_loss']:11.6f}", flush=True)
    for side in sides.values():
        side.close()
    best = {name: max(side_runs, key=lambda run: run["steps_s"]) for name, side_runs in runs.items()}
    print(f"best of {args.repeat}:")
    for name, run in best.items():
        print(f"  {name}: {run['steps_s']:6.2f} steps/s, {run['steps_s'] * tokens_per_step:8,.0f} tokens/s, peak RSS "
              f"{runs[name][0]['rss_kib'] / 1024:4.0f} MiB after the first run's timed steps, "
              f"{runs[name][-1]['peak_kib'] / 1024:4.0f} MiB over all its runs")
    losses = {run["final_loss"] for side_runs in runs.values() for run in side_runs}
    same = "identical in every run" if len(losses) == 1 else f"DIFFERENT: {sorted(losses)}"
    print(f"final loss after {args.warmup + args.steps + 1} steps: {same}")
    print(f"ratio ours/bare: {best['ours']['steps_s'] / best['bare']['steps_s']:.2f}x (target >= 0.95)")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
