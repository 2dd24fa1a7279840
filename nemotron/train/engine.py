"""Megatron-Core's training engine for one rank: the model chunks in its DDP, its optimizer and
learning-rate scheduler, and one training or evaluation step through its forward-backward
schedules (no pipelining, 1F1B, interleaved 1F1B), gradients finalized by
``finalize_model_grads``.

The learning rate is Megatron-Core's ``OptimizerParamScheduler`` (linear warmup from 0, cosine
decay to ``min_lr`` at the last step), stepped once before each optimizer step so that step
``s`` trains at the rate of step ``s``: the numbers of :func:`nemotron.train.loop.learning_rate`
(tests/nemotron/train/test_engine.py compares them). Weight decay is Megatron-Core's too: not on
biases and norm weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from nemotron.schemas.optimizer import OptimizerConfig
from nemotron.schemas.train import TrainConfig
from nemotron.train import distributed

# A batch source gives the micro-batch of samples [first, first + size) of a split.
BatchFn = Callable[[str, int, int, torch.device], dict[str, torch.Tensor]]


@dataclass
class Engine:
    chunks: list  # this rank's model chunks, each in Megatron-Core's DistributedDataParallel
    optimizer: Any  # a MegatronOptimizer
    scheduler: Any  # an OptimizerParamScheduler
    config: Any  # the chunks' TransformerConfig


def build(chunks: list, train: TrainConfig, optimizer: OptimizerConfig, bf16: bool, steps: int) -> Engine:
    """Wrap ``chunks`` in DDP and make the optimizer and scheduler a run of ``steps`` uses."""
    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig, finalize_model_grads
    from megatron.core.optimizer import OptimizerConfig as MegatronOptimizerConfig
    from megatron.core.optimizer import get_megatron_optimizer
    from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler

    from nemotron.train.module_wrappers import unwrap

    config = unwrap(chunks[0]).config
    ddp_config = DistributedDataParallelConfig(
        grad_reduce_in_fp32=True, overlap_grad_reduce=train.overlap_grad_reduce,
        use_distributed_optimizer=train.use_distributed_optimizer, bucket_size=train.bucket_size,
    )
    wrapped = [DistributedDataParallel(config, ddp_config, chunk) for chunk in chunks]
    megatron_optimizer = get_megatron_optimizer(MegatronOptimizerConfig(
        optimizer="adam", lr=optimizer.lr, min_lr=optimizer.min_lr, weight_decay=optimizer.weight_decay,
        adam_beta1=optimizer.beta1, adam_beta2=optimizer.beta2, adam_eps=optimizer.eps,
        decoupled_weight_decay=optimizer.name == "adamw", clip_grad=optimizer.clip_grad,
        bf16=bf16, params_dtype=torch.bfloat16 if bf16 else torch.float32,
        use_distributed_optimizer=train.use_distributed_optimizer,
    ), wrapped)
    scheduler = OptimizerParamScheduler(
        megatron_optimizer, init_lr=0.0, max_lr=optimizer.lr, min_lr=optimizer.min_lr,
        lr_warmup_steps=optimizer.warmup_steps,
        lr_decay_steps=max(steps, optimizer.warmup_steps + 1),  # a run shorter than its warmup never decays
        lr_decay_style="cosine", start_wd=optimizer.weight_decay, end_wd=optimizer.weight_decay,
        wd_incr_steps=max(steps, 1), wd_incr_style="constant",
    )
    config.finalize_model_grads_func = finalize_model_grads
    if train.overlap_grad_reduce:
        config.no_sync_func = [chunk.no_sync for chunk in wrapped] if len(wrapped) > 1 else wrapped[0].no_sync
        config.grad_sync_func = ([chunk.start_grad_sync for chunk in wrapped] if len(wrapped) > 1
                                 else wrapped[0].start_grad_sync)
    return Engine(wrapped, megatron_optimizer, scheduler, config)


def train_step(engine: Engine, batch_fn: BatchFn, micro_firsts: list[int], micro_batch_size: int, seq_length: int,
               topo: distributed.Topology, step: int) -> tuple[float, float, float]:
    """One optimizer step over the micro-batches that start at ``micro_firsts``: the loss
    (mean over micro-batches and data-parallel ranks, on every rank), the gradient norm and
    the learning rate it trained at."""
    for chunk in engine.chunks:
        chunk.zero_grad_buffer()
    engine.optimizer.zero_grad()
    engine.scheduler.num_steps = step - 1
    engine.scheduler.step(1)
    losses = _forward_backward(engine, batch_fn, "train", micro_firsts, micro_batch_size, seq_length, topo,
                               forward_only=False)
    _, grad_norm, _ = engine.optimizer.step()
    return _mean_loss(losses, topo), float(grad_norm or 0.0), float(engine.optimizer.param_groups[0]["lr"])


def evaluate(engine: Engine, batch_fn: BatchFn, micro_firsts: list[int], micro_batch_size: int, seq_length: int,
             topo: distributed.Topology) -> float | None:
    """The mean loss over the validation micro-batches at ``micro_firsts``; None without a split."""
    if batch_fn("valid", micro_firsts[0], micro_batch_size, topo.device) is None:
        return None
    for chunk in engine.chunks:
        chunk.eval()
    with torch.no_grad():
        losses = _forward_backward(engine, batch_fn, "valid", micro_firsts, micro_batch_size, seq_length, topo,
                                   forward_only=True)
    for chunk in engine.chunks:
        chunk.train()
    return _mean_loss(losses, topo)


def masked_loss(output: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """The mean of the per-token losses ``output`` where ``loss_mask`` is set."""
    mask = loss_mask.to(output.dtype)
    return (output.float() * mask).sum() / mask.sum().clamp(min=1)


def model_loss(model, batch: dict[str, Any]) -> torch.Tensor:
    """The masked loss of a (whole, one-stage) model on one batch: what a step minimizes."""
    return masked_loss(_forward(model, batch), batch["loss_mask"])


def _forward(model, batch: dict[str, Any]) -> torch.Tensor:
    packed = {"packed_seq_params": batch["packed_seq_params"]} if "packed_seq_params" in batch else {}
    return model(batch["tokens"], batch["position_ids"], batch["attention_mask"], labels=batch["labels"], **packed)


def _forward_backward(engine: Engine, batch_fn: BatchFn, split: str, micro_firsts: list[int], micro_batch_size: int,
                      seq_length: int, topo: distributed.Topology, *, forward_only: bool) -> list[torch.Tensor]:
    from megatron.core.pipeline_parallel import get_forward_backward_func

    def micro_batches() -> Iterator[dict[str, Any]]:
        for first in micro_firsts:
            yield batch_fn(split, first, micro_batch_size, topo.device)

    def forward_step(data: Iterator[dict[str, Any]], model):
        batch = next(data)
        output = _forward(model, batch)

        def loss_func(output_tensor: torch.Tensor):
            loss = masked_loss(output_tensor, batch["loss_mask"])
            # The schedule divides the loss it returns in place: keep a copy for the record.
            return loss, {"loss": loss.detach().clone()}

        return output, loss_func

    # Every chunk of an interleaved pipeline reads the same micro-batches, in order.
    data = [micro_batches() for _ in engine.chunks] if len(engine.chunks) > 1 else micro_batches()
    outputs = get_forward_backward_func()(
        forward_step_func=forward_step, data_iterator=data,
        model=engine.chunks if len(engine.chunks) > 1 else engine.chunks[0],
        num_microbatches=len(micro_firsts), seq_length=seq_length, micro_batch_size=micro_batch_size,
        forward_only=forward_only,
    )
    return [output["loss"] for output in outputs]


def _mean_loss(losses: list[torch.Tensor], topo: distributed.Topology) -> float:
    """The losses of the last pipeline stage, averaged over micro-batches and data-parallel
    ranks, on every rank (rank 0, which writes the metrics, is a first stage)."""
    from megatron.core import parallel_state

    total = torch.stack(losses).mean() if losses else torch.zeros((), dtype=torch.float32)
    total = total.to(topo.device, torch.float32)
    if topo.pp_size > 1:  # only the last stage holds losses; the others add zero
        torch.distributed.all_reduce(total, group=parallel_state.get_pipeline_model_parallel_group())
    if topo.dp_size > 1:
        torch.distributed.all_reduce(total, group=parallel_state.get_data_parallel_group())
        total /= topo.dp_size
    return float(total)
