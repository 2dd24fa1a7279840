"""${art:NAME,FIELD} in plain OmegaConf and in Hydra compose, with command-line overrides."""


import pytest
from omegaconf import OmegaConf
from omegaconf.errors import InterpolationResolutionError

import nemo_runspec  # noqa: F401  (registers the resolver)
from nemo_runspec.artifacts import Artifact, log_artifact
from nemo_runspec.errors import ConfigError


class PackedArtifact(Artifact):
    pack_size: int
    tokenizer: dict


@pytest.fixture
def packed(tracking, tmp_path):
    for size in (128, 256):
        log_artifact(PackedArtifact(path=tmp_path / f"p{size}", pack_size=size, tokenizer={"vocab_size": 300},
                                    metadata={"stats": {"mean_len": 17}}), tracking, name="packed")
    return tracking


def test_fields_resolve_from_the_referenced_artifact(packed, tmp_path):
    cfg = OmegaConf.create({
        "run": {"data": "packed:latest"},
        "recipe": {
            "path": "${art:data,path}/blend.json", "seq_length": "${art:data,pack_size}",
            "version": "${art:data,version}", "name": "${art:data,name}", "type": "${art:data,type}",
            "vocab": "${art:data,tokenizer.vocab_size}", "mean": "${art:data,stats.mean_len}",
        },
    })
    assert OmegaConf.to_container(cfg.recipe, resolve=True) == {
        "path": f"{tmp_path}/p256/blend.json", "seq_length": 256, "version": 2, "name": "packed",
        "type": "PackedArtifact", "vocab": 300, "mean": 17,
    }


def test_an_overridden_reference_is_what_resolves(packed):
    cfg = OmegaConf.create({"run": {"data": "packed:latest"}, "seq": "${art:data,pack_size}"})
    cfg.merge_with_dotlist(["run.data=packed:v1"])
    assert cfg.seq == 128


def test_art_uri_form_is_accepted(packed):
    cfg = OmegaConf.create({"run": {"data": "art://packed:v1"}, "seq": "${art:data,pack_size}"})
    assert cfg.seq == 128


def _cause(err):
    while err is not None and not isinstance(err, ConfigError):
        err = err.__cause__ or err.__context__
    return err


def test_unknown_run_key_names_it(packed):
    cfg = OmegaConf.create({"run": {"data": "packed:v1"}, "x": "${art:model,path}"})
    with pytest.raises(InterpolationResolutionError) as err:
        cfg.x
    assert "run.model is not set (run has: data)" in str(_cause(err.value))


def test_unknown_field_lists_the_fields_that_exist(packed):
    cfg = OmegaConf.create({"run": {"data": "packed:v1"}, "x": "${art:data,seq_len}"})
    with pytest.raises(InterpolationResolutionError) as err:
        cfg.x
    message = str(_cause(err.value))
    assert "no field 'seq_len'" in message and "pack_size" in message


def test_hydra_compose_resolves_with_command_line_overrides(packed, tmp_path):
    from hydra import compose, initialize_config_dir

    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "train.yaml").write_text(
        "run:\n  data: packed:latest\nrecipe:\n  seq_length: ${art:data,pack_size}\n"
        "  per_split_data_args_path: ${art:data,path}/blend.json\n"
    )
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("train", overrides=["run.data=packed:v1"])
    assert cfg.recipe.seq_length == 128
    assert cfg.recipe.per_split_data_args_path == f"{tmp_path}/p128/blend.json"


def test_registering_again_keeps_resolving_logged_fields(packed):
    from nemo_runspec.resolver import register_art_resolver

    register_art_resolver()
    register_art_resolver()
    cfg = OmegaConf.create({"run": {"data": "packed:v1"}, "seq": "${art:data,pack_size}"})
    assert cfg.seq == 128


def test_an_artifact_the_registry_lacks_is_a_one_line_error_naming_it(packed):
    from nemo_runspec.errors import ArtifactNotFoundError, user_error

    cfg = OmegaConf.create({"run": {"data": "unpacked:latest"}, "seq": "${art:data,pack_size}"})
    with pytest.raises(InterpolationResolutionError) as err:
        cfg.seq
    cause = user_error(err.value)
    assert isinstance(cause, ArtifactNotFoundError)
    assert "'unpacked'" in str(cause) and "\n" not in str(cause)
    assert "packed" in cause.hint  # the names the registry does hold


def test_a_tracking_given_to_the_resolver_is_the_one_it_reads(packed, tmp_path):
    from nemo_runspec.artifacts import setup_artifact_tracking
    from nemo_runspec.resolver import resolve_art

    cfg = OmegaConf.create({"run": {"data": "packed:v1"}})
    setup_artifact_tracking({"root": str(tmp_path / "empty")})
    assert resolve_art("data", "pack_size", _root_=cfg, tracking=packed) == 128
