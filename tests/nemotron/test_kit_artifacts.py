"""The four pipeline artifact types: typed fields, validation, default names and lineage."""

import pytest
from pydantic import ValidationError

from nemo_runspec.artifacts import Artifact, log_artifact
from nemotron.kit import ModelArtifact, PretrainBlendsArtifact, SFTDataArtifact, SplitJsonlDataArtifact
from nemotron.kit.artifacts import ChatTemplateInfo, PackedSplit, SourceInfo, TokenizerInfo

TOKENIZER = TokenizerInfo(path="/tok/tokenizer.json", sha256="ab" * 32, vocab_size=512)
SOURCE = SourceInfo(name="wiki", uri="/raw/wiki.jsonl", weight=0.7, num_bytes=1234, sha256="cd" * 32)


def blends(tmp_path):
    return PretrainBlendsArtifact(
        path=tmp_path / "pre", blend_path=tmp_path / "pre" / "blend.json", total_tokens=1000, total_sequences=10,
        num_shards=2, split_tokens={"train": 900, "valid": 50, "test": 50}, split_sequences={"train": 8},
        tokenizer=TOKENIZER, sources=[SOURCE],
    )


def sft(tmp_path):
    return SFTDataArtifact(
        path=tmp_path / "sft", pack_size=256, num_packs=4, num_sequences=12, packing_efficiency=93.5,
        splits={"train": PackedSplit(path="train", num_packs=3, num_sequences=9)},
        tokenizer=TOKENIZER, chat_template=ChatTemplateInfo(name="chatml", sha256="ef" * 32), sources=[SOURCE],
    )


def test_every_type_round_trips_with_nested_typed_fields(tracking, tmp_path):
    pre = log_artifact(blends(tmp_path), tracking, name="pre")
    data = log_artifact(sft(tmp_path), tracking, name="sft")
    rl = log_artifact(SplitJsonlDataArtifact(path=tmp_path / "rl", train_path=tmp_path / "rl/train.jsonl",
                                             train_count=5, val_count=1, sources=[SOURCE]), tracking, name="rl")
    model = log_artifact(ModelArtifact(path=tmp_path / "m", stage="pretrain", step=10, final_loss=2.5,
                                       training_data="pre:latest"), tracking)
    for original in (pre, data, rl, model):
        loaded = Artifact.from_uri(f"{original.name}:v{original.version}")
        assert type(loaded) is type(original)
        assert loaded.model_dump(exclude={"created_at"}) == original.model_dump(exclude={"created_at"})
    assert Artifact.from_uri("sft:v1").splits["train"].num_packs == 3
    assert Artifact.from_uri("pre:v1").tokenizer.vocab_size == 512


def test_input_uris_declare_lineage(tracking, tmp_path):
    assert blends(tmp_path).get_input_uris() == ["/raw/wiki.jsonl", "/tok/tokenizer.json"]
    log_artifact(blends(tmp_path), tracking, name="pre")
    log_artifact(ModelArtifact(path=tmp_path / "m0", stage="pretrain", step=1, training_data="pre:latest"), tracking)
    sft_model = log_artifact(ModelArtifact(path=tmp_path / "m1", stage="sft", step=1,
                                           parent_model="ModelArtifact-pretrain:latest"), tracking)
    assert sft_model.name == "ModelArtifact-sft"
    assert tracking.resolve("ModelArtifact-sft:v1").inputs == ["art://ModelArtifact-pretrain:v1"]
    assert tracking.resolve("ModelArtifact-pretrain:v1").inputs == ["art://pre:v1"]


@pytest.mark.parametrize("bad", [
    {"pack_size": 1}, {"packing_efficiency": 101.0}, {"num_packs": -1},
])
def test_sft_field_constraints(tmp_path, bad):
    good = sft(tmp_path).model_dump()
    with pytest.raises(ValidationError):
        SFTDataArtifact(**{**good, **bad})


def test_model_stage_and_format_are_closed_sets(tmp_path):
    with pytest.raises(ValidationError):
        ModelArtifact(path=tmp_path, stage="distill", step=0)
    with pytest.raises(ValidationError):
        ModelArtifact(path=tmp_path, stage="sft", step=0, format="onnx")


def test_sft_pack_size_resolves_through_the_config_resolver(tracking, tmp_path):
    from omegaconf import OmegaConf

    log_artifact(sft(tmp_path), tracking, name="chat-data")
    cfg = OmegaConf.create({"run": {"data": "chat-data:latest"}, "seq": "${art:data,pack_size}",
                            "train": "${art:data,splits.train.path}"})
    assert (cfg.seq, cfg.train) == (256, "train")
