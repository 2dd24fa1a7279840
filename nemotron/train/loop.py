"""The training loop of one rank: build, resume, step, evaluate, checkpoint, report.

Runs inside a process started by torchrun, srun or the stage step (see ``launch``). Each step
goes through Megatron-Core's engine (:mod:`nemotron.train.engine`: its DDP, optimizer, LR
scheduler and forward-backward schedules); this loop owns what a run of this framework
guarantees around it: resume from the last complete checkpoint, metrics, progress, the loss
plot and the result record. The learning rate is a function of the step and batches are read
by position, so a resumed run repeats an uninterrupted one bit for bit on CPU.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nemo_runspec.schema import validate
from nemotron.schemas.job import TrainingJob
from nemotron.schemas.model import architecture_of
from nemotron.schemas.optimizer import OptimizerConfig
from nemotron.train import checkpoint as ckpt
from nemotron.train import distributed, engine, preemption
from nemotron.train.engine import BatchFn
from nemotron.train.models import build_chunks
from nemotron.train.metrics import MetricsLog, plot_loss
from nemotron.train.moe_metrics import MoEMetrics

RESULT_FILE = "result.json"


@dataclass(frozen=True)
class Schedule:
    steps: int
    micro_batch_size: int
    global_batch_size: int
    seq_length: int

    def accumulation(self, dp_size: int) -> int:
        per_step = self.micro_batch_size * dp_size
        if self.global_batch_size % per_step:
            raise ValueError(f"train.global_batch_size={self.global_batch_size} is not a multiple of "
                             f"micro_batch_size x data-parallel size = {per_step}")
        return self.global_batch_size // per_step


def learning_rate(step: int, optimizer: OptimizerConfig | Mapping[str, Any], steps: int) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``min_lr`` at the last step."""
    if not isinstance(optimizer, OptimizerConfig):
        optimizer = validate(OptimizerConfig, optimizer, "optimizer")
    lr, min_lr, warmup = optimizer.lr, optimizer.min_lr, optimizer.warmup_steps
    if step <= warmup:
        return lr * step / max(warmup, 1)
    progress = (step - warmup) / max(steps - warmup, 1)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


def train(job: TrainingJob, batches_for: Callable[[TrainingJob, distributed.Topology], BatchFn]) -> dict[str, Any]:
    """Train as ``job`` says; returns (and on rank 0 writes) the result record."""
    model_cfg, train_cfg = job.model, job.train
    run_dir = Path(job.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt.start_writer_queue()  # before anything saves: CPU model-parallel runs save their initial weights
    cuda = distributed.use_cuda(train_cfg.device)
    bf16 = train_cfg.precision == "bf16" and cuda
    topo = distributed.initialize(train_cfg.tensor_parallel, train_cfg.seed, cuda, train_cfg.pipeline_parallel,
                                  train_cfg.virtual_pipeline_parallel, train_cfg.context_parallel,
                                  train_cfg.expert_parallel)
    schedule = Schedule(train_cfg.steps, train_cfg.micro_batch_size, train_cfg.global_batch_size,
                        train_cfg.seq_length or model_cfg.seq_length)
    accumulation = schedule.accumulation(topo.dp_size)

    chunks = build_chunks(model_cfg, int(job.data["vocab_size"]), train_cfg, cuda, bf16)
    run = engine.build(chunks, train_cfg, job.optimizer, bf16, schedule.steps)
    layout = {**topo.layout, "distributed_optimizer": train_cfg.use_distributed_optimizer}
    state = _resume_or_start(run_dir, run, job, topo, layout)
    batch_fn = batches_for(job, topo)

    metrics = MetricsLog(run_dir, state.step, job.sections()) if topo.is_main else None
    experts = MoEMetrics(run.chunks, model_cfg.num_layers, model_cfg.num_moe_experts) if model_cfg.num_moe_experts \
        else None
    stop = preemption.StopRequest()  # the stage step clears an earlier run's record before starting this one
    from nemo_runspec.progress import RateProgress

    last_loss = val_loss = None
    with RateProgress(job.stage, total=schedule.steps, counters=("tokens",),
                      enabled=topo.is_main and job.show_progress) as bar:
        bar.unit_done(state.step)
        while state.step < schedule.steps:
            state.step += 1
            started = time.perf_counter()
            firsts = _micro_firsts(state.consumed_samples, accumulation, schedule.micro_batch_size, topo)
            if experts:
                experts.start_step()
            last_loss, grad_norm, lr = engine.train_step(run, batch_fn, firsts, schedule.micro_batch_size,
                                                         schedule.seq_length, topo, state.step)
            state.consumed_samples += schedule.global_batch_size
            step_time = time.perf_counter() - started
            tokens = schedule.global_batch_size * schedule.seq_length
            state.tokens_seen += tokens
            record = {"step": state.step, "loss": last_loss, "lr": lr, "grad_norm": round(grad_norm, 6),
                      "step_time_s": round(step_time, 5), "tokens_per_s": round(tokens / step_time, 1),
                      "tokens_seen": state.tokens_seen}
            if experts:
                record.update(experts.read(len(firsts), topo.device))  # aux losses, each expert's share
            if _due(state.step, train_cfg.eval_interval, schedule.steps):
                # eval_steps global batches from the start of the split, whatever the layout.
                firsts = [first for batch in range(train_cfg.eval_steps) for first in _micro_firsts(
                    batch * schedule.global_batch_size, accumulation, schedule.micro_batch_size, topo)]
                val_loss = engine.evaluate(run, batch_fn, firsts, schedule.micro_batch_size, schedule.seq_length, topo)
                if val_loss is not None:
                    record["val_loss"] = val_loss
            if metrics:
                metrics.write(record)
            bar.add(tokens=tokens, note=f"loss {last_loss:.4f}  lr {lr:.2e}")
            bar.unit_done()
            saved = _due(state.step, train_cfg.checkpoint_interval, schedule.steps)
            if saved:
                ckpt.save(run_dir / "checkpoints", state, run.chunks, run.optimizer, distributed.rng_state(), topo.rank)
            if state.step < schedule.steps and (signum := stop.agreed(topo.device)) is not None:
                _stop(run_dir, state, run, topo, signum, saved, metrics)

    final = ckpt.find_latest(run_dir / "checkpoints")
    result = {"step": state.step, "final_loss": last_loss,
              "val_loss": val_loss, "tokens_seen": state.tokens_seen, "checkpoint": str(final),
              "processes": topo.world_size, "tensor_parallel": topo.tp_size, "pipeline_parallel": topo.pp_size,
              "data_parallel": topo.dp_size,
              # a CPU matmul's sums depend on the thread count: reproduce reruns with it
              "cpu_threads": None if topo.device.type == "cuda" else torch.get_num_threads()}
    if metrics:
        metrics.close()
        if result["final_loss"] is None:  # resumed at the last step: the loss is in the metrics file
            from nemotron.train.metrics import read_metrics

            result["final_loss"] = next((r["loss"] for r in reversed(read_metrics(metrics.path))), None)
        result["plot"] = str(plot_loss(run_dir))
        (run_dir / RESULT_FILE).write_text(json.dumps(result, indent=1))
    distributed.shutdown()
    return result


def _stop(run_dir: Path, state: ckpt.TrainerState, run: engine.Engine, topo: distributed.Topology, signum: int,
          saved: bool, metrics: MetricsLog | None) -> None:
    """Checkpoint (unless this step just did), record why, and exit 0: the record, not the
    status, tells the driver the run stopped. A non-zero status from one task would make srun
    (``--kill-on-bad-exit``) kill the others, rank 0 among them, before it wrote the record."""
    if not saved:
        ckpt.save(run_dir / "checkpoints", state, run.chunks, run.optimizer, distributed.rng_state(), topo.rank)
    if metrics:
        metrics.close()
        preemption.record(run_dir, state.step, signum)
        print(f"stopped at step {state.step} on {preemption.read(run_dir)['signal']}: checkpoint saved", flush=True)
    distributed.shutdown()
    raise SystemExit(0)


def _micro_firsts(start: int, accumulation: int, micro_batch_size: int, topo: distributed.Topology) -> list[int]:
    """Where this rank's micro-batches of the global batch at sample ``start`` begin: each
    data-parallel rank takes ``accumulation`` consecutive micro-batches, ranks in order."""
    return [start + (topo.dp_rank * accumulation + micro) * micro_batch_size for micro in range(accumulation)]


def _due(step: int, interval: int | None, last: int) -> bool:
    return step == last or (bool(interval) and step % interval == 0)


def _resume_or_start(run_dir: Path, run: engine.Engine, job: TrainingJob, topo: distributed.Topology,
                     layout: dict[str, Any]) -> ckpt.TrainerState:
    latest = ckpt.find_latest(run_dir / "checkpoints")
    if latest is None:
        if job.init_checkpoint:  # a parent model (SFT, RL): weights only, a fresh optimizer
            ckpt.load_model(Path(job.init_checkpoint), run.chunks)
        return ckpt.TrainerState(step=0, consumed_samples=0, tokens_seen=0, tp_size=topo.tp_size, world_size=topo.world_size,
                                 architecture=architecture_of(job.model.model_dump(exclude_unset=True)),
                                 layout=layout)
    state = ckpt.read_trainer_state(latest)
    resharded = ckpt.load(latest, run, layout, topo.rank)
    if topo.is_main:
        how = f", resharded from {ckpt.layout_words(state.layout)}" if resharded else ""
        print(f"resuming from {latest} (step {state.step}{how})", flush=True)
    state.tp_size, state.world_size, state.layout = topo.tp_size, topo.world_size, layout
    return state
