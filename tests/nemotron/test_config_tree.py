"""Every config group option composes, and every family offers the tiny data-prep recipe."""

import pytest
import yaml

from nemo_runspec.hydra_app import Recipe, compose
from nemotron.recipes import conf_dir, families, recipe


def test_families_nano3_and_super3_exist_with_tiny_default():
    assert {"nano3", "super3"} <= set(families())
    for family in ("nano3", "super3"):
        cfg = compose(recipe(family, "data_prep_pretrain"), [])
        assert cfg.variant == "tiny" and cfg.family == family
        assert cfg.run.name == f"{family}-pretrain-data-tiny"


def test_variant_full_switches_groups_and_requires_a_blend():
    cfg = compose(recipe("nano3", "data_prep_pretrain"), ["variant=full", "tokenizer.path=/models/x"])
    assert cfg.data_prep.shards_per_dataset == 64 and cfg.tokenizer.name == "local"
    from omegaconf.errors import MissingMandatoryValue

    with pytest.raises(MissingMandatoryValue):
        cfg.data_prep.blend


@pytest.mark.parametrize("path", sorted(p for p in conf_dir().rglob("*.yaml")), ids=lambda p: str(p.relative_to(conf_dir())))
def test_every_group_option_composes(tmp_path, path):
    group = str(path.parent.relative_to(conf_dir()))
    primary = tmp_path / "primary.yaml"
    primary.write_text(f"defaults:\n  - /{group}: {path.stem}\n  - _self_\nfamily: f\nstage: s\n")
    cfg = compose(Recipe(tmp_path, "primary", (conf_dir(),)), [])
    assert cfg is not None
    yaml.safe_load(path.read_text())


@pytest.mark.parametrize("recipe_name", ["data_prep_pretrain", "data_prep_sft"])
def test_full_variants_do_not_keep_the_tiny_samples(recipe_name):
    cfg = compose(recipe("nano3", recipe_name), ["variant=full", "tokenizer.path=/models/x"])
    from omegaconf.errors import MissingMandatoryValue

    with pytest.raises(MissingMandatoryValue):
        cfg.data_prep.blend
