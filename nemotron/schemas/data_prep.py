"""The ``data_prep`` group, one schema per stage: pretrain (bin/idx), sft (packed Parquet), rl (JSONL)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from nemo_runspec.schema import GroupSchema
from nemotron.data.packing import ALGORITHMS
from nemotron.data.splits import split_ratios, split_spec
from nemotron.data.text_sources import DatasetSpec

OnError = Literal["fail", "skip"]


class _Prep(GroupSchema):
    blend: list[DatasetSpec] = Field(min_length=1)
    on_error: OnError = "fail"  # fail: stop at the first bad record; skip: count it by reason
    output_root: str

    @field_validator("blend", mode="before")
    @classmethod
    def _blend_list(cls, value: Any) -> Any:
        if not isinstance(value, list):
            raise ValueError(f"must be a list of datasets (name, path, ...), got {type(value).__name__}")
        return value

    @model_validator(mode="after")
    def _distinct_names(self):
        names = [d.name for d in self.blend]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"blend has two datasets with the same name {dupes[0]!r}")
        return self


class PrepSlice(GroupSchema):
    """Job ``index`` of ``count`` prepares its share of the shards; ``finalize`` writes blend.json."""

    count: int = Field(1, ge=1)
    index: int = Field(0, ge=0)
    finalize: bool = False

    @model_validator(mode="after")
    def _in_range(self) -> PrepSlice:
        if self.index >= self.count:
            raise ValueError(f"index={self.index} is not below count={self.count}")
        return self


class _RatioSplits(_Prep):
    """``splits``: weights of train, valid and test (pretraining and SFT)."""

    splits: dict[str, float]

    @field_validator("splits")
    @classmethod
    def _ratios(cls, value: dict[str, float]) -> dict[str, float]:
        split_ratios(value)  # its one-line ConfigError names data_prep.splits
        return value

    def ratios(self) -> tuple[float, float, float]:
        return split_ratios(self.splits)


class PretrainPrepConfig(_RatioSplits):
    shards_per_dataset: int = Field(ge=1)
    workers: int = Field(0, ge=0)
    batch_docs: int = Field(256, ge=1)
    add_bos: bool = False
    append_eod: bool = True
    slice: PrepSlice = PrepSlice()


class SFTPrepConfig(_RatioSplits):
    chat_template: str
    pack_size: int = Field(ge=2)
    packing: Literal[ALGORITHMS] = "first_fit_shuffle"  # type: ignore[valid-type]
    seed: int = Field(ge=0)
    overlong: Literal["truncate", "drop"] = "truncate"
    packs_per_shard: int = Field(1000, ge=1)
    workers: int = Field(0, ge=0)  # processes that render and tokenize; 0: this one


class RLPrepConfig(_Prep):
    splits: dict[str, float | int | None]
    seed: int = Field(ge=0)

    @field_validator("splits")
    @classmethod
    def _spec(cls, value: dict[str, Any]) -> dict[str, Any]:
        split_spec(value)
        return value

    def split_spec(self):
        return split_spec(self.splits)
