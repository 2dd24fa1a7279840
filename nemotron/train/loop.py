"""The training loop of one rank: build, resume, step, evaluate, checkpoint, report.

Runs inside a process started by torchrun, srun or the stage step (see ``launch``). The
optimizer is torch's AdamW or Adam (``optimizer.name``) on this rank's parameters; data-parallel gradients are averaged
by an all-reduce and the gradient norm for clipping counts tensor-parallel shards once, so
tensor parallelism does not change the numbers. The learning rate is a function of the step,
and batches are read by position, so a resumed run repeats an uninterrupted one bit for bit
on CPU.
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
from nemotron.schemas.optimizer import OPTIMIZERS, OptimizerConfig
from nemotron.train import checkpoint as ckpt
from nemotron.train import distributed
from nemotron.train.gpt import build_model
from nemotron.train.metrics import MetricsLog, plot_loss

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


# A batch source gives the micro-batch of samples [first, first + size) of a split.
BatchFn = Callable[[str, int, int, torch.device], dict[str, torch.Tensor]]


def train(job: TrainingJob, batches_for: Callable[[TrainingJob, distributed.Topology], BatchFn]) -> dict[str, Any]:
    """Train as ``job`` says; returns (and on rank 0 writes) the result record."""
    model_cfg, train_cfg, opt_cfg = job.model, job.train, job.optimizer
    run_dir = Path(job.run_dir)
    cuda = distributed.use_cuda(train_cfg.device)
    bf16 = train_cfg.precision == "bf16" and cuda
    topo = distributed.initialize(train_cfg.tensor_parallel, train_cfg.seed, cuda)
    schedule = Schedule(train_cfg.steps, train_cfg.micro_batch_size, train_cfg.global_batch_size,
                        train_cfg.seq_length or model_cfg.seq_length)
    accumulation = schedule.accumulation(topo.dp_size)

    model = build_model(model_cfg, int(job.data["vocab_size"]), topo.tp_size, cuda, bf16)
    optimizer = make_optimizer(model, opt_cfg)
    state = _resume_or_start(run_dir, model, optimizer, job, topo)
    batch_fn = batches_for(job, topo)

    metrics = MetricsLog(run_dir, state.step, job.sections()) if topo.is_main else None
    from nemo_runspec.progress import RateProgress

    last_loss = val_loss = None
    with RateProgress(job.stage, total=schedule.steps, counters=("tokens",),
                      enabled=topo.is_main and job.show_progress) as bar:
        bar.unit_done(state.step)
        while state.step < schedule.steps:
            state.step += 1
            started = time.perf_counter()
            lr = learning_rate(state.step, opt_cfg, schedule.steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            last_loss = _train_step(model, optimizer, batch_fn, schedule, accumulation, topo, state, opt_cfg.clip_grad)
            step_time = time.perf_counter() - started
            tokens = schedule.global_batch_size * schedule.seq_length
            state.tokens_seen += tokens
            record = {"step": state.step, "loss": last_loss, "lr": lr, "step_time_s": round(step_time, 5),
                      "tokens_per_s": round(tokens / step_time, 1), "tokens_seen": state.tokens_seen}
            if _due(state.step, train_cfg.eval_interval, schedule.steps):
                val_loss = _evaluate(model, batch_fn, schedule, train_cfg.eval_steps, topo)
                if val_loss is not None:
                    record["val_loss"] = val_loss
            if metrics:
                metrics.write(record)
            bar.add(tokens=tokens, note=f"loss {last_loss:.4f}  lr {lr:.2e}")
            bar.unit_done()
            if _due(state.step, train_cfg.checkpoint_interval, schedule.steps):
                ckpt.save(run_dir / "checkpoints", state, model, optimizer, distributed.rng_state(), topo.rank)

    final = ckpt.find_latest(run_dir / "checkpoints")
    result = {"step": state.step, "final_loss": last_loss,
              "val_loss": val_loss, "tokens_seen": state.tokens_seen, "checkpoint": str(final),
              "processes": topo.world_size, "tensor_parallel": topo.tp_size, "data_parallel": topo.dp_size}
    if metrics:
        metrics.close()
        if result["final_loss"] is None:  # resumed at the last step: the loss is in the metrics file
            from nemotron.train.metrics import read_metrics

            result["final_loss"] = next((r["loss"] for r in reversed(read_metrics(metrics.path))), None)
        result["plot"] = str(plot_loss(run_dir))
        (run_dir / RESULT_FILE).write_text(json.dumps(result, indent=1))
    distributed.shutdown()
    return result


def make_optimizer(model, config: OptimizerConfig) -> torch.optim.Optimizer:
    """``optimizer.name``'s torch optimizer over the model's parameters."""
    cls = getattr(torch.optim, OPTIMIZERS[config.name])
    return cls(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=(config.beta1, config.beta2),
               eps=config.eps)


def _due(step: int, interval: int | None, last: int) -> bool:
    return step == last or (bool(interval) and step % interval == 0)


def _resume_or_start(run_dir: Path, model, optimizer, job: TrainingJob, topo: distributed.Topology) -> ckpt.TrainerState:
    latest = ckpt.find_latest(run_dir / "checkpoints")
    if latest is None:
        if job.init_checkpoint:  # a parent model (SFT, RL): weights only, a fresh optimizer
            ckpt.load_model(Path(job.init_checkpoint), model)
        return ckpt.TrainerState(step=0, consumed_samples=0, tokens_seen=0, tp_size=topo.tp_size, world_size=topo.world_size,
                                 architecture=architecture_of(job.model.model_dump(exclude_unset=True)))
    state = ckpt.read_trainer_state(latest)
    if (state.tp_size, state.world_size) != (topo.tp_size, topo.world_size):
        raise RuntimeError(f"{latest} was written with tensor_parallel={state.tp_size} on {state.world_size} "
                           f"processes; resume with the same layout")
    ckpt.load_model(latest, model)
    rank_state = ckpt.load_rank_state(latest, topo.rank)
    optimizer.load_state_dict(rank_state["optimizer"])
    distributed.set_rng_state(rank_state["rng"])
    if topo.is_main:
        print(f"resuming from {latest} (step {state.step})", flush=True)
    return state


def _train_step(model, optimizer, batch_fn: BatchFn, schedule: Schedule, accumulation: int,
                topo: distributed.Topology, state: ckpt.TrainerState, clip_grad: float) -> float:
    model.train()
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), dtype=torch.float32, device=topo.device)
    for micro in range(accumulation):
        first = (state.consumed_samples + (topo.dp_rank * accumulation + micro) * schedule.micro_batch_size)
        loss = _masked_loss(model, batch_fn("train", first, schedule.micro_batch_size, topo.device))
        (loss / accumulation).backward()
        total += loss.detach() / accumulation
    state.consumed_samples += schedule.global_batch_size
    _average_data_parallel(model, total, topo)
    if clip_grad > 0:
        _clip_gradients(model, clip_grad)
    optimizer.step()
    return float(total)


def _masked_loss(model, batch: dict[str, Any]) -> torch.Tensor:
    packed = {"packed_seq_params": batch["packed_seq_params"]} if "packed_seq_params" in batch else {}
    losses = model(batch["tokens"], batch["position_ids"], batch["attention_mask"], labels=batch["labels"], **packed)
    mask = batch["loss_mask"].to(losses.dtype)
    return (losses.float() * mask).sum() / mask.sum().clamp(min=1)


def _average_data_parallel(model, loss: torch.Tensor, topo: distributed.Topology) -> None:
    if topo.dp_size == 1:
        return
    from megatron.core import parallel_state

    group = parallel_state.get_data_parallel_group()
    for param in model.parameters():
        if param.grad is not None:
            torch.distributed.all_reduce(param.grad, group=group)
            param.grad /= topo.dp_size
    torch.distributed.all_reduce(loss, group=group)
    loss /= topo.dp_size


def _clip_gradients(model, max_norm: float) -> None:
    """Clip by the global norm: tensor-parallel shards summed across the group, replicated
    parameters (norm weights) counted once, as if the model were in one piece."""
    from megatron.core import parallel_state

    sharded = torch.zeros((), dtype=torch.float32)
    replicated = torch.zeros((), dtype=torch.float32)
    grads = [p for p in model.parameters() if p.grad is not None]
    for param in grads:
        square = param.grad.detach().float().pow(2).sum().cpu()
        if getattr(param, "tensor_model_parallel", False):
            sharded += square
        else:
            replicated += square
    if parallel_state.get_tensor_model_parallel_world_size() > 1:
        torch.distributed.all_reduce(sharded, group=parallel_state.get_tensor_model_parallel_group())
    norm = float(torch.sqrt(sharded + replicated))
    if norm > max_norm:
        for param in grads:
            param.grad.mul_(max_norm / (norm + 1e-6))


def _evaluate(model, batch_fn: BatchFn, schedule: Schedule, eval_steps: int, topo: distributed.Topology) -> float | None:
    model.eval()
    losses = []
    with torch.no_grad():
        for i in range(eval_steps):
            first = (i * topo.dp_size + topo.dp_rank) * schedule.micro_batch_size
            batch = batch_fn("valid", first, schedule.micro_batch_size, topo.device)
            if batch is None:
                return None
            losses.append(_masked_loss(model, batch))
    value = torch.stack(losses).mean()
    if topo.dp_size > 1:
        from megatron.core import parallel_state

        torch.distributed.all_reduce(value, group=parallel_state.get_data_parallel_group())
        value /= topo.dp_size
    return float(value)
