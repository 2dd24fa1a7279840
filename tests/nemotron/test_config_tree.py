"""Every config group option composes to its own values, and every family offers the tiny data-prep recipe."""

import re

import pytest
from omegaconf import OmegaConf

from nemo_runspec.hydra_app import Recipe, compose
from nemotron.recipes import conf_dir, families, recipe

OPTIONS = sorted(conf_dir().rglob("*.yaml"))


def test_families_nano3_and_super3_exist_with_tiny_default():
    assert {"nano3", "super3"} <= set(families())
    for family in ("nano3", "super3"):
        cfg = compose(recipe(family, "data_prep_pretrain"), [])
        assert cfg.variant == "tiny" and cfg.family == family
        assert cfg.run.name == f"{family}-pretrain-data-tiny"


@pytest.mark.parametrize("recipe_name", ["pretrain", "sft", "rl", "data_prep_pretrain", "data_prep_sft", "data_prep_rl"])
def test_every_familys_tiny_pipe_trains_on_the_same_schedule_and_data(recipe_name):
    """The tiny pipe learns on the schedules of the tiny variants (README: what it learns); a
    family whose tiny variant lacked them would run a pipe that learns nothing."""
    def plain(family):
        cfg = OmegaConf.to_container(compose(recipe(family, recipe_name), []), resolve=False)
        return {key: value for key, value in cfg.items() if key in ("train", "optimizer", "rl", "data_prep", "model")}

    assert plain("super3") == plain("nano3")


def test_variant_full_switches_groups_and_requires_a_blend():
    cfg = compose(recipe("nano3", "data_prep_pretrain"), ["variant=full", "tokenizer.path=/models/x"])
    assert cfg.data_prep.shards_per_dataset == 64 and cfg.tokenizer.name == "local"
    from omegaconf.errors import MissingMandatoryValue

    with pytest.raises(MissingMandatoryValue):
        cfg.data_prep.blend


def package_of(path) -> str:
    """The ``# @package`` the option's first line declares."""
    match = re.match(r"# @package (\S+)", path.read_text())
    assert match, f"{path} does not start with '# @package NAME'"
    return match.group(1)


def compose_option(tmp_path, path, overrides=()):
    """A primary config that picks only this option of its group, composed."""
    group = str(path.parent.relative_to(conf_dir()))
    (tmp_path / "primary.yaml").write_text(f"defaults:\n  - /{group}: {path.stem}\n  - _self_\nfamily: f\nstage: s\n")
    return compose(Recipe(tmp_path, "primary", (conf_dir(),)), list(overrides))


def changed(value):
    """An override of ``value`` that differs from it, as the command line spells it."""
    if isinstance(value, bool):
        return str(not value).lower(), not value
    if isinstance(value, (int, float)):
        return str(value + 1), value + 1
    return f"'{value}-changed'", f"{value}-changed"


def hydra_settings(tmp_path):
    """The ``hydra`` node Hydra composed for the primary config ``compose_option`` wrote."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        return hydra_compose("primary", overrides=[f"hydra.searchpath=[file://{conf_dir()}]"],
                             return_hydra_config=True).hydra


def assert_within(expected, actual, where="hydra"):
    """Every key of ``expected`` is in ``actual`` with the same value (nested mappings recursively)."""
    if isinstance(expected, dict):
        for key, value in expected.items():
            assert isinstance(actual, dict) and key in actual, f"{where}.{key} is not in the composed config"
            assert_within(value, actual[key], f"{where}.{key}")
    else:
        assert actual == expected, f"{where} is {actual!r}, the option says {expected!r}"


@pytest.mark.parametrize("path", OPTIONS, ids=lambda p: str(p.relative_to(conf_dir())))
def test_every_group_option_composes_to_its_values_and_an_override_wins(tmp_path, path):
    package = package_of(path)
    option = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    values = {k: v for k, v in option.items() if k not in ("defaults", "hydra")}  # hydra: Hydra's own settings
    node = compose_option(tmp_path, path)
    node = node if package == "_global_" else OmegaConf.select(node, package)
    composed = OmegaConf.to_container(node, resolve=False)
    assert {k: composed.get(k) for k in values} == values
    if "hydra" in option:
        assert_within(option["hydra"], OmegaConf.to_container(hydra_settings(tmp_path), resolve=False))

    scalars = [k for k, v in values.items() if isinstance(v, (bool, int, float, str)) and not
               (isinstance(v, str) and (v == "???" or "${" in v))]
    if not scalars:
        return
    key = next((k for k in scalars if not isinstance(values[k], str)), scalars[0])
    spelled, expected = changed(values[key])
    dotted = key if package == "_global_" else f"{package}.{key}"
    overridden = compose_option(tmp_path, path, [f"{dotted}={spelled}"])
    assert OmegaConf.select(overridden, dotted) == expected


def test_the_readme_table_lists_every_group_and_option():
    rows = re.findall(r"^\| `([\w/]+)/` \| ([^|]+) \| `?([\w]+)`?", (conf_dir() / "README.md").read_text(), re.M)
    listed = {group: set(re.findall(r"`([\w-]+)`", options.split("(")[0])) for group, options, _ in rows}
    tree: dict[str, set[str]] = {}
    for path in OPTIONS:
        tree.setdefault(str(path.parent.relative_to(conf_dir())), set()).add(path.stem)
    assert listed == tree
    packages = {group: package for group, _, package in rows}
    for path in OPTIONS:
        group = str(path.parent.relative_to(conf_dir()))
        expected = "global" if package_of(path) == "_global_" else package_of(path)
        assert packages[group] == expected, f"conf/README.md: {group}/ is package {packages[group]}, {path.name} says {expected}"


@pytest.mark.parametrize("recipe_name", ["data_prep_pretrain", "data_prep_sft"])
def test_full_variants_do_not_keep_the_tiny_samples(recipe_name):
    cfg = compose(recipe("nano3", recipe_name), ["variant=full", "tokenizer.path=/models/x"])
    from omegaconf.errors import MissingMandatoryValue

    with pytest.raises(MissingMandatoryValue):
        cfg.data_prep.blend
