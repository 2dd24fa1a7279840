"""The artifact types of the pretrain -> SFT -> RL pipeline."""

from nemo_runspec.artifacts.base import Artifact
from nemotron.kit.artifacts.common import SourceInfo, TokenizerInfo
from nemotron.kit.artifacts.eval_result import EvalResultArtifact
from nemotron.kit.artifacts.model import ModelArtifact
from nemotron.kit.artifacts.pretrain_blends import PretrainBlendsArtifact
from nemotron.kit.artifacts.sft_data import ChatTemplateInfo, PackedSplit, SFTDataArtifact
from nemotron.kit.artifacts.split_jsonl import SplitJsonlDataArtifact

__all__ = [
    "Artifact",
    "ChatTemplateInfo",
    "EvalResultArtifact",
    "ModelArtifact",
    "PackedSplit",
    "PretrainBlendsArtifact",
    "SFTDataArtifact",
    "SourceInfo",
    "SplitJsonlDataArtifact",
    "TokenizerInfo",
]
