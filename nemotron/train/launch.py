"""Entry point of a training process: ``python -m nemotron.train.launch JOB.json``.

One such process runs per rank, started by the stage step itself (one process), torchrun
(several on one machine) or srun (SLURM). The job file holds everything the rank needs; the
result is written by rank 0 to ``<run_dir>/result.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from nemotron.data.splits import SPLITS
from nemotron.schemas.job import TrainingJob
from nemotron.schemas.steps import PretrainInputs, SFTInputs


def pretrain_batches(job: TrainingJob, topo):
    """The batch source of pretraining: GPTDatasets over the job's blend.json."""
    from nemo_runspec.schema import validate
    from nemotron.train.pretrain_data import BlendTokenizer, batch, build_datasets

    data, train = validate(PretrainInputs, job.data, "data"), job.train
    evals = train.steps // (train.eval_interval or train.steps) + 1
    sizes = (train.steps * train.global_batch_size, evals * train.eval_steps * train.global_batch_size, 0)
    tokenizer = BlendTokenizer(vocab_size=data.vocab_size, eod=data.eod_id,
                               pad=data.pad_id if data.pad_id is not None else data.eod_id, name=data.tokenizer_sha256)
    datasets = dict(zip(SPLITS, build_datasets(
        Path(data.blend_path), tokenizer, job.model.seq_length, train.seed, sizes, Path(job.run_dir) / "dataset_cache")))

    def batches(split: str, first: int, size: int, device):
        dataset = datasets.get(split)
        return None if dataset is None else batch(dataset, first, size, device)

    return batches


def sft_batches(job: TrainingJob, topo):
    """The batch source of SFT: packs of the job's packed Parquet, one pack per sample."""
    import importlib.util

    from nemo_runspec.schema import validate
    from nemotron.data.packed_parquet import shards
    from nemotron.train.sft_data import PackedSplit, pack_order, pack_sample, stack

    data, seed = validate(SFTInputs, job.data, "data"), job.train.seed
    seq_length, pad = job.train.seq_length, data.pad_id
    root = Path(data.path)
    splits = {name: PackedSplit(root / name) for name in SPLITS[:2] if shards(root / name)}
    # TransformerEngine's attention takes packed sequences as boundaries (THD) on GPUs; Mamba
    # layers need them everywhere (see nemotron.train.sft_data).
    te = topo.device.type == "cuda" and importlib.util.find_spec("transformer_engine") is not None
    boundaries = "thd" if te else "sbhd" if job.model.architecture == "hybrid" else None

    def batches(split: str, first: int, size: int, device):
        packs = splits.get(split)
        if packs is None:
            return None
        samples = [pack_sample(*packs.pack(pack_order(len(packs), seed, first + i)), seq_length, pad) for i in range(size)]
        return stack(samples, device, boundaries)

    return batches


BATCH_SOURCES = {"pretrain": pretrain_batches, "sft": sft_batches}


def main(argv: list[str]) -> int:
    import os

    from nemo_runspec.errors import run_job_file
    from nemo_runspec.slurm.rendezvous import torch_env

    os.environ.update(torch_env())  # an srun task: its rank comes from SLURM's variables
    from nemo_runspec.quiet import quiet_third_party
    from nemotron.train.megatron_warnings import silence_megatron_warnings

    silence_megatron_warnings()
    quiet_third_party()
    from nemo_runspec.schema import validate
    from nemotron.train.loop import train

    def run(job: dict[str, Any]) -> dict[str, Any]:
        typed = validate(TrainingJob, job, "job")
        return train(typed, BATCH_SOURCES[typed.stage])

    return run_job_file(argv, run)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
