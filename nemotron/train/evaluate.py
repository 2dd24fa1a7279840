"""Entry point of an evaluation process: ``python -m nemotron.train.evaluate JOB.json``.

``eval=loss``: the model of the job's architecture is built on this machine (one process,
fp32), the checkpoint loaded into it (any layout it was saved in; ``weights=initial`` keeps the
weights the training run started from, a baseline), and the mean per-token
cross-entropy taken over the first ``samples`` sequences of the split, read through the
GPTDataset training reads (same seed, same order). Writes ``{"loss", "tokens", "sequences"}``
to the job's result file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def held_out_loss(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    from nemo_runspec.progress import RateProgress
    from nemotron.data.splits import SPLITS
    from nemotron.train import checkpoint, distributed
    from nemotron.train.engine import masked_loss
    from nemotron.train.models import build_model
    from nemotron.train.pretrain_data import BlendTokenizer, batch, build_datasets

    evaluation = job["eval"]
    cuda = distributed.use_cuda(evaluation.get("device", "auto"))
    initial = evaluation.get("weights") == "initial"
    distributed.initialize(1, int(job["init_seed"]) if initial else int(evaluation["seed"]), cuda)
    try:
        model = build_model(job["architecture"], int(job["vocab_size"]), 1, cuda=cuda, bf16=False)
        if not initial:  # else the weights its training run started from (same seed, same builder)
            checkpoint.load_model(Path(job["checkpoint"]), model)
        model.eval()
        samples, size = int(job["samples"]), int(evaluation["micro_batch_size"])
        sizes = tuple(samples if split == job["split"] else 0 for split in SPLITS)
        eod = int(job["eod_id"])
        tokenizer = BlendTokenizer(vocab_size=int(job["vocab_size"]), eod=eod,
                                   pad=eod if job.get("pad_id") is None else int(job["pad_id"]),
                                   name=job["tokenizer_sha256"])
        datasets = build_datasets(Path(job["blend_path"]), tokenizer, int(job["architecture"]["seq_length"]),
                                  int(evaluation["seed"]), sizes, Path(job["out"]) / "dataset_cache")
        dataset = datasets[SPLITS.index(job["split"])]
        device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
        total = tokens = 0.0
        with torch.no_grad(), RateProgress(f"eval {job['split']} loss", total=samples, counters=("tokens",),
                                           enabled=bool(job.get("show_progress"))) as bar:
            for first in range(0, samples, size):
                micro = batch(dataset, first, min(size, samples - first), device)
                output = model(micro["tokens"], micro["position_ids"], micro["attention_mask"], labels=micro["labels"])
                counted = float(micro["loss_mask"].sum())
                total += float(masked_loss(output, micro["loss_mask"])) * counted
                tokens += counted
                bar.add(tokens=int(counted))
                bar.unit_done(min(size, samples - first))
        return {"loss": total / max(tokens, 1.0), "tokens": int(tokens), "sequences": samples}
    finally:
        distributed.shutdown()


def main(argv: list[str]) -> int:
    from nemo_runspec import atomic
    from nemo_runspec.errors import run_job_file
    from nemo_runspec.quiet import quiet_third_party
    from nemo_runspec.slurm.rendezvous import single_process_env
    from nemotron.train.megatron_warnings import silence_megatron_warnings

    silence_megatron_warnings()
    quiet_third_party()
    import os

    for key, value in single_process_env().items():
        os.environ.setdefault(key, value)

    def run(job: dict[str, Any]) -> None:
        atomic.write_json(Path(job["result"]), held_out_loss(job))

    return run_job_file(argv, run)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
