"""One schema per step: the groups its recipe composes, and the rules across groups.

A recipe's composed and resolved config is validated against its step's schema once, where
the step receives it (:func:`nemotron.stages.step.receive`), before anything is written or a
training process starts. ``data`` is what a recipe reads from its input artifacts through
``${art:...}``.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from nemo_runspec.groups import ArtifactsConfig, LauncherConfig, TrackingConfig
from nemo_runspec.schema import GroupSchema
from nemotron.schemas.data_prep import PretrainPrepConfig, RLPrepConfig, SFTPrepConfig
from nemotron.schemas.eval import EvalConfig
from nemotron.schemas.model import ModelConfig
from nemotron.schemas.optimizer import OptimizerConfig
from nemotron.schemas.rl import RLConfig
from nemotron.schemas.tokenizer import TokenizerConfig
from nemotron.schemas.train import TrainConfig


class RunConfig(GroupSchema):
    name: str = Field(min_length=1)  # the artifact name the step logs under
    data: str | None = None  # the input data artifact (name:version)
    model: str | None = None  # the parent model artifact


class StepConfig(GroupSchema):
    family: str
    stage: str
    variant: str
    run: RunConfig
    artifacts: ArtifactsConfig = ArtifactsConfig()
    launcher: LauncherConfig = LauncherConfig()


class PretrainDataStep(StepConfig):
    tokenizer: TokenizerConfig
    data_prep: PretrainPrepConfig


class SFTDataStep(StepConfig):
    tokenizer: TokenizerConfig
    data_prep: SFTPrepConfig


class RLDataStep(StepConfig):
    data_prep: RLPrepConfig


class PretrainInputs(GroupSchema):
    blend_path: str
    vocab_size: int = Field(ge=1)
    eod_id: int = Field(ge=0)
    pad_id: int | None = Field(None, ge=0)
    tokenizer_sha256: str


class SFTInputs(GroupSchema):
    path: str
    vocab_size: int = Field(ge=1)
    pad_id: int | None = Field(None, ge=0)
    tokenizer_sha256: str


class InitConfig(GroupSchema):
    checkpoint: str | None = None  # the parent's checkpoint the run starts from


class TrainingStep(StepConfig):
    data_variant: str  # the variant of the data artifacts it trains on (run.data)
    model: ModelConfig
    train: TrainConfig
    optimizer: OptimizerConfig
    tracking: TrackingConfig = TrackingConfig()

    @model_validator(mode="after")
    def _layout_fits_the_model(self):
        train, model = self.train, self.model
        tp, pp, chunks = train.tensor_parallel, train.pipeline_parallel, train.virtual_pipeline_parallel or 1
        groups = model.num_query_groups or model.num_attention_heads
        for key, value in (("num_attention_heads", model.num_attention_heads), ("num_query_groups", groups)):
            if value % tp:
                raise ValueError(f"train.tensor_parallel={tp} does not divide model.{key}={value}")
        if model.architecture == "hybrid":
            heads = model.mamba_num_heads or model.hidden_size * (model.mamba_expand or 2) // (model.mamba_head_dim or 64)
            for key, value in (("mamba_num_heads", heads), ("mamba_num_groups", model.mamba_num_groups or 1)):
                if value % tp:
                    raise ValueError(f"train.tensor_parallel={tp} does not divide model.{key}={value}")
            if train.virtual_pipeline_parallel:
                raise ValueError("train.virtual_pipeline_parallel: megatron-core 0.16's hybrid model has no "
                                 "interleaved pipeline stages (use train.pipeline_parallel alone)")
        if model.num_layers % (pp * chunks):
            raise ValueError(f"model.num_layers={model.num_layers} is not a multiple of train.pipeline_parallel={pp}"
                             + (f" x train.virtual_pipeline_parallel={chunks}" if chunks > 1 else ""))
        if train.nproc_per_node % train.model_parallel:
            parts = (f"train.tensor_parallel={tp}" if train.model_parallel == tp else
                     f"tensor x pipeline x context parallel = {tp} x {pp} x {train.context_parallel}")
            raise ValueError(f"train.nproc_per_node={train.nproc_per_node} is not a multiple of {parts}")
        if train.expert_parallel > 1:
            if not model.num_moe_experts:
                raise ValueError(f"train.expert_parallel={train.expert_parallel} needs a MoE model "
                                 f"(model.num_moe_experts)")
            if model.num_moe_experts % train.expert_parallel:
                raise ValueError(f"train.expert_parallel={train.expert_parallel} does not divide "
                                 f"model.num_moe_experts={model.num_moe_experts}")
        return self


class PretrainStep(TrainingStep):
    data: PretrainInputs


class SFTStep(TrainingStep):
    data: SFTInputs
    init: InitConfig = InitConfig()

    @model_validator(mode="after")
    def _packs_fit(self):
        if self.train.seq_length is None:
            raise ValueError("train.seq_length is missing (the packs' length: ${art:data,pack_size})")
        if self.model.architecture == "hybrid" and self.train.micro_batch_size != 1:
            # Megatron-Core's Mamba mixer takes the boundaries of one pack (seq_idx of batch 1).
            raise ValueError(f"train.micro_batch_size must be 1 for SFT of a hybrid model (one pack per "
                             f"micro-batch keeps its Mamba layers apart), got {self.train.micro_batch_size}")
        return self


class RLInputs(GroupSchema):
    train_path: str
    val_path: str | None = None


class RLStep(StepConfig):
    data_variant: str  # the variant of the data artifacts it trains on (run.data)
    rl: RLConfig
    data: RLInputs


class EvalStep(StepConfig):
    data_variant: str  # the variant of the data artifacts it reads (run.data)
    eval: EvalConfig
