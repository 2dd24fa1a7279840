"""Which pipeline stage an artifact belongs to, for grouping lineage graphs like the spec's."""

from __future__ import annotations

STAGES = ("Stage 0: Pretraining", "Stage 1: SFT", "Stage 2: RL")
_DATA_STAGE = {"PretrainBlendsArtifact": 0, "SFTDataArtifact": 1, "SplitJsonlDataArtifact": 2}
_MODEL_STAGE = {"pretrain": 0, "sft": 1, "rl": 2}


def stage_of(node, consumer=None) -> str | None:
    """The stage box of a lineage node; a raw input sits in the box of the data made from it."""
    record = node.record
    if record is None:
        return stage_of(consumer) if consumer is not None and consumer.record is not None else None
    if record.type in _DATA_STAGE:
        return STAGES[_DATA_STAGE[record.type]]
    if record.type == "ModelArtifact" and record.fields.get("stage") in _MODEL_STAGE:
        return STAGES[_MODEL_STAGE[record.fields["stage"]]]
    return None
