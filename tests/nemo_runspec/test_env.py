import pytest

from nemo_runspec.env import find_env_file, load_env
from nemo_runspec.errors import ConfigError

ENV = """
[artifacts]
root = "registry"

[wandb]
project = "nemotron"

[cluster]
executor = "slurm"
partition = "batch"
nodes = 1
time = "04:00:00"

[big]
extends = "cluster"
nodes = 8

[bigger]
extends = "big"
partition = "long"
"""


def test_found_by_walking_up_from_the_working_directory(isolated, monkeypatch):
    (isolated / "env.toml").write_text(ENV)
    deep = isolated / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert find_env_file() == isolated / "env.toml"
    assert load_env().section("wandb") == {"project": "nemotron"}


def test_explicit_file_from_the_environment(isolated, tmp_path, monkeypatch):
    other = tmp_path / "elsewhere.toml"
    other.write_text('[wandb]\nproject = "x"\n')
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(other))
    assert load_env().path == other
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="missing.toml"):
        load_env()


def test_no_env_file_is_empty(isolated):
    env = load_env()
    assert env.path is None and env.profile_names == [] and env.section("artifacts") == {}


def test_profiles_merge_their_extends_chain(isolated):
    (isolated / "env.toml").write_text(ENV)
    env = load_env()
    assert env.profile_names == ["big", "bigger", "cluster"]
    assert env.profile("bigger") == {
        "executor": "slurm", "partition": "long", "nodes": 8, "time": "04:00:00", "name": "bigger",
    }


def test_unknown_profile_and_cycles(isolated):
    (isolated / "env.toml").write_text(ENV + '\n[a]\nextends = "b"\n[b]\nextends = "a"\n[c]\nextends = "nope"\n')
    env = load_env()
    with pytest.raises(ConfigError, match="profile 'gpu' is not defined"):
        env.profile("gpu")
    with pytest.raises(ConfigError, match="cycle"):
        env.profile("a")
    with pytest.raises(ConfigError, match="extends 'nope'"):
        env.profile("c")


def test_syntax_error_names_file_and_line(isolated):
    (isolated / "env.toml").write_text('[artifacts]\nroot = "x"\nbroken = \n')
    with pytest.raises(ConfigError) as err:
        load_env()
    assert str(err.value).startswith(f"{isolated / 'env.toml'}:3: invalid TOML")
