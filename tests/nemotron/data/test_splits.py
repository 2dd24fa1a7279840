"""The split names and the hash that assigns a record to a split."""

import pytest

from nemo_runspec.errors import ConfigError
from nemotron.data.splits import RL_NAMES, RL_SPLITS, SPLITS, split_by_hash, split_ratios


def test_rl_names_its_validation_split_val_and_keeps_the_order():
    assert SPLITS == ("train", "valid", "test")
    assert RL_SPLITS == ("train", "val", "test") == tuple(RL_NAMES[s] for s in SPLITS)


def test_ratios_are_normalised_and_bad_ones_name_the_key():
    assert split_ratios({"train": 8, "valid": 1, "test": 1}) == (0.8, 0.1, 0.1)
    assert split_ratios({"train": 1}) == (1.0, 0.0, 0.0)
    with pytest.raises(ConfigError, match=r"unknown split\(s\) \['val'\] \(use train, valid, test\)"):
        split_ratios({"train": 0.9, "val": 0.1})
    with pytest.raises(ConfigError, match="not all zero"):
        split_ratios({"train": 0})


def test_a_key_always_lands_in_the_same_split_in_proportion_to_the_ratios():
    keys = [f"document {i}".encode() for i in range(20000)]
    ratios = (0.8, 0.15, 0.05)
    codes = [split_by_hash(key, ratios) for key in keys]
    assert codes == [split_by_hash(key, ratios) for key in keys]
    for code, ratio in enumerate(ratios):
        assert abs(codes.count(code) / len(keys) - ratio) < 0.01
    assert {split_by_hash(key, (1.0, 0.0, 0.0)) for key in keys} == {0}
    assert {split_by_hash(key, (0.0, 0.0, 1.0)) for key in keys} == {2}
