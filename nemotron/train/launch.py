"""Entry point of a training process: ``python -m nemotron.train.launch JOB.json``.

One such process runs per rank, started by the stage step itself (one process), torchrun
(several on one machine) or srun (SLURM). The job file holds everything the rank needs; the
result is written by rank 0 to ``<run_dir>/result.json``.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any


def pretrain_batches(job: dict[str, Any], topo):
    """The batch source of pretraining: GPTDatasets over the job's blend.json."""
    from nemotron.train.pretrain_data import BlendTokenizer, batch, build_datasets

    data, train = job["data"], job["train"]
    steps, gbs = int(train["steps"]), int(train["global_batch_size"])
    evals = steps // int(train.get("eval_interval") or steps) + 1
    sizes = (steps * gbs, evals * int(train.get("eval_steps", 1)) * gbs, 0)
    tokenizer = BlendTokenizer(vocab_size=int(data["vocab_size"]), eod=int(data["eod_id"]),
                               pad=int(data["pad_id"] if data.get("pad_id") is not None else data["eod_id"]), name=str(data["tokenizer_sha256"]))
    datasets = dict(zip(("train", "valid", "test"), build_datasets(
        Path(data["blend_path"]), tokenizer, int(job["model"]["seq_length"]), int(train["seed"]), sizes,
        Path(job["run_dir"]) / "dataset_cache")))

    def batches(split: str, first: int, size: int, device):
        dataset = datasets.get(split)
        return None if dataset is None else batch(dataset, first, size, device)

    return batches


def sft_batches(job: dict[str, Any], topo):
    """The batch source of SFT: packs of the job's packed Parquet, one pack per sample."""
    import importlib.util

    from nemotron.train.sft_data import PackedSplit, pack_order, pack_sample, stack

    data, seed = job["data"], int(job["train"]["seed"])
    seq_length, pad = int(job["train"]["seq_length"]), int(data["pad_id"])
    root = Path(data["path"])
    splits = {name: PackedSplit(root / name) for name in ("train", "valid") if list((root / name).glob("*.parquet"))}
    # TransformerEngine's attention takes packed sequences as boundaries (THD) on GPUs.
    thd = topo.device.type == "cuda" and importlib.util.find_spec("transformer_engine") is not None

    def batches(split: str, first: int, size: int, device):
        packs = splits.get(split)
        if packs is None:
            return None
        samples = [pack_sample(*packs.pack(pack_order(len(packs), seed, first + i)), seq_length, pad) for i in range(size)]
        return stack(samples, device, thd)

    return batches


BATCH_SOURCES = {"pretrain": pretrain_batches, "sft": sft_batches}


def main(argv: list[str]) -> int:
    import os

    from nemo_runspec.errors import run_job_file
    from nemo_runspec.slurm.rendezvous import torch_env

    os.environ.update(torch_env())  # an srun task: its rank comes from SLURM's variables
    # Megatron-Core warns at import about optional GPU libraries (Apex, TransformerEngine)
    # and deprecated defaults it sets itself; none of it is actionable for a run.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"megatron\.")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(megatron|torch)\.")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.distributed\.")
    from nemotron.train.loop import train

    return run_job_file(argv, lambda job: train(job, BATCH_SOURCES[job["stage"]]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
