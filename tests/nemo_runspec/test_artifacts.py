"""The typed artifact base class and log_artifact / from_uri through a tracking."""

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import Field, ValidationError

from nemo_runspec.artifacts import Artifact, log_artifact, setup_artifact_tracking
from nemo_runspec.errors import ArtifactNotFoundError, CorruptRecordError, TypeMismatchError
from nemo_runspec.registry import ArtifactRecord


class SamplesArtifact(Artifact):
    num_samples: Annotated[int, Field(ge=0)]
    source_url: Annotated[str | None, Field(default=None)]
    splits: dict[str, int] = Field(default_factory=dict)


class DerivedArtifact(Artifact):
    source: str

    def get_input_uris(self):
        return [self.source, "/raw/file.txt"]


def test_typed_fields_round_trip_through_registry_and_metadata_json(tracking, tmp_path):
    data = tmp_path / "data"
    art = log_artifact(SamplesArtifact(path=data, num_samples=7, splits={"train": 5}), tracking, name="s")
    assert (art.name, art.version) == ("s", 1)
    loaded = SamplesArtifact.from_uri("art://s:latest")
    assert isinstance(loaded, SamplesArtifact)
    assert (loaded.num_samples, loaded.splits, loaded.path, loaded.version) == (7, {"train": 5}, data, 1)
    beside = json.loads((data / "metadata.json").read_text())
    assert beside["fields"]["num_samples"] == 7 and beside["version"] == 1 and beside["type"] == "SamplesArtifact"
    assert SamplesArtifact.load(data).num_samples == 7


def test_from_uri_on_the_base_class_returns_the_stored_subclass(tracking, tmp_path):
    log_artifact(SamplesArtifact(path=tmp_path, num_samples=3), tracking, name="s")
    loaded = Artifact.from_uri("s:v1")
    assert type(loaded) is SamplesArtifact and loaded.num_samples == 3 and loaded.type == "SamplesArtifact"


def test_from_uri_imports_the_module_of_the_stored_type(tracking, tmp_path):
    from nemotron.kit.artifacts import ModelArtifact  # noqa: F401  (registers the type)

    log_artifact(ModelArtifact(path=tmp_path, stage="sft", step=5), tracking)
    loaded = Artifact.from_uri("ModelArtifact-sft:latest")
    assert type(loaded).__name__ == "ModelArtifact" and loaded.step == 5


def test_unknown_stored_type_loads_as_a_stand_in_with_its_fields(tracking):
    tracking.registry.publish(ArtifactRecord(
        name="ghost", type="GhostArtifact", type_module="no_such_module", path="/g",
        created_at=datetime.now(timezone.utc), fields={"rows": 4},
    ))
    loaded = Artifact.from_uri("ghost:v1")
    assert loaded.type == "GhostArtifact" and loaded.rows == 4
    from nemo_runspec.artifacts import artifact_class
    assert artifact_class("GhostArtifact") is None


def test_from_uri_into_the_wrong_subclass_is_refused(tracking, tmp_path):
    log_artifact(SamplesArtifact(path=tmp_path, num_samples=3), tracking, name="s")
    with pytest.raises(TypeMismatchError, match="is a SamplesArtifact, not a DerivedArtifact"):
        DerivedArtifact.from_uri("s:latest")


def test_from_uri_into_a_class_whose_required_field_is_missing_names_the_field(tracking, tmp_path):
    log_artifact(SamplesArtifact(path=tmp_path, num_samples=3), tracking, name="s")

    class Stricter(SamplesArtifact):
        shard_count: int

    tracking.registry.publish(ArtifactRecord(
        name="strict", type="Stricter", path="/p", created_at=datetime.now(timezone.utc), fields={"num_samples": 1},
    ))
    with pytest.raises(TypeMismatchError, match="field 'shard_count'"):
        Stricter.from_uri("strict:v1")


def test_typed_field_constraints_are_enforced():
    with pytest.raises(ValidationError):
        SamplesArtifact(path=Path("/x"), num_samples=-1)
    with pytest.raises(ValidationError):
        SamplesArtifact(path=Path("/x"), num_samples=1, unknown=2)


def test_inputs_are_pinned_to_the_version_they_resolved_to(tracking, tmp_path):
    log_artifact(SamplesArtifact(path=tmp_path / "a", num_samples=1), tracking, name="src")
    log_artifact(SamplesArtifact(path=tmp_path / "b", num_samples=2), tracking, name="src")
    derived = log_artifact(DerivedArtifact(path=tmp_path / "d", source="art://src:latest"), tracking, name="derived")
    record = tracking.resolve("derived:latest")
    assert record.inputs == ["art://src:v2", "/raw/file.txt"]
    assert derived.version == 1


def test_explicit_inputs_and_aliases(tracking, tmp_path):
    log_artifact(SamplesArtifact(path=tmp_path, num_samples=1), tracking, name="src")
    art = log_artifact(SamplesArtifact(path=tmp_path / "x", num_samples=1), tracking, name="x",
                       inputs=["src:v1", "src:latest"], aliases=["best"])
    record = tracking.resolve("x:best")
    assert record.version == art.version and record.inputs == ["art://src:v1"]


def test_unknown_input_is_an_error_and_nothing_is_published(tracking, tmp_path):
    with pytest.raises(ArtifactNotFoundError):
        log_artifact(DerivedArtifact(path=tmp_path / "d", source="art://missing:v1"), tracking, name="d")
    assert tracking.registry.names() == []
    assert not (tmp_path / "d").exists()


def test_type_mismatch_on_a_name_publishes_nothing(tracking, tmp_path):
    log_artifact(SamplesArtifact(path=tmp_path / "a", num_samples=1), tracking, name="n")
    with pytest.raises(TypeMismatchError):
        log_artifact(DerivedArtifact(path=tmp_path / "b", source="/f"), tracking, name="n")
    assert tracking.registry.latest_version("n") == 1
    assert not (tmp_path / "b").exists()


def test_producer_and_code_version_are_recorded(tracking, tmp_path, monkeypatch):
    monkeypatch.setenv("NEMOTRON_RUN_ID", "ignored-after-first-use")
    art = log_artifact(SamplesArtifact(path=tmp_path, num_samples=1), tracking, name="p")
    record = tracking.resolve("p:v1")
    assert record.producer["host"] and record.producer["user"] and record.producer["run_id"]
    assert art.producer is not None


def test_code_version_reads_git(tmp_path, monkeypatch):
    import subprocess

    from nemo_runspec.provenance import _code_version_of

    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "f").write_text("1")
    subprocess.run([*git, "add", "f"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    clean = _code_version_of(repo)
    assert len(clean.git_sha) == 40 and clean.dirty is False
    (repo / "f").write_text("2")
    _code_version_of.cache_clear()
    assert _code_version_of(repo).dirty is True
    assert _code_version_of(tmp_path / "work") is None


def test_latest_stays_pinned_within_a_run_until_the_run_publishes(tracking, tmp_path):
    from nemo_runspec.registry import ManifestRegistry

    log_artifact(SamplesArtifact(path=tmp_path, num_samples=1), tracking, name="s")
    assert tracking.resolve("s:latest").version == 1
    other = ManifestRegistry(tracking.registry.root)  # another process publishing
    other.publish(tracking.registry.read_version("s", 1).model_copy(update={"version": None}))
    assert tracking.resolve("s:latest").version == 1
    log_artifact(SamplesArtifact(path=tmp_path, num_samples=1), tracking, name="s")
    assert tracking.resolve("s:latest").version == 3


def test_corrupt_metadata_json_is_a_clear_error(tmp_path):
    (tmp_path / "metadata.json").write_text('{"name": "x", "ver')
    with pytest.raises(CorruptRecordError, match="metadata.json"):
        SamplesArtifact.load(tmp_path)
    with pytest.raises(CorruptRecordError, match="no metadata.json"):
        SamplesArtifact.load(tmp_path / "nothing")


def test_default_root_is_artifacts_under_the_working_directory(isolated):
    tracking = setup_artifact_tracking()
    assert tracking.registry.root == isolated / "artifacts"


def test_root_precedence_config_over_env_var_over_env_toml(isolated, monkeypatch, tmp_path):
    (isolated / "env.toml").write_text('[artifacts]\nroot = "from-toml"\n')
    assert setup_artifact_tracking().registry.root == isolated / "from-toml"
    monkeypatch.setenv("NEMOTRON_ARTIFACTS_ROOT", str(tmp_path / "from-env"))
    assert setup_artifact_tracking().registry.root == tmp_path / "from-env"
    cfg = {"artifacts": {"root": str(tmp_path / "from-config")}, "run": {"data": "${art:data,path}"}}
    assert setup_artifact_tracking(cfg).registry.root == tmp_path / "from-config"


def test_setup_accepts_an_omegaconf_run_config_with_unresolvable_references(tmp_path):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"artifacts": {"root": str(tmp_path / "r")}, "x": "${art:data,path}"})
    assert setup_artifact_tracking(cfg).registry.root == tmp_path / "r"


def test_unknown_backend_is_a_config_error(tmp_path):
    from nemo_runspec.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown artifact backend 'mlflow'"):
        setup_artifact_tracking({"root": str(tmp_path), "backends": ["manifest", "mlflow"]})
    with pytest.raises(ConfigError, match="leaves out 'manifest'"):
        setup_artifact_tracking({"root": str(tmp_path), "backends": ["wandb"]})


def test_secondary_backends_receive_published_records_and_answer_unknown_names(tmp_path, monkeypatch):
    from nemo_runspec.artifacts import tracking as tracking_module
    from nemo_runspec.registry import ArtifactBackend

    class Recorder(ArtifactBackend):
        name = "recorder"

        def __init__(self, section):
            self.section, self.mirrored = section, []

        def publish(self, draft):
            raise NotImplementedError

        def mirror(self, record, inputs):
            self.mirrored.append((record.ref, [i.ref for i in inputs]))

        def resolve(self, ref):
            if ref.name != "remote-only":
                raise ArtifactNotFoundError(ref.name)
            return ArtifactRecord(name="remote-only", version=4, type="SamplesArtifact", path="/r",
                                  created_at=datetime.now(timezone.utc), fields={"num_samples": 9})

    monkeypatch.setitem(tracking_module.BACKEND_FACTORIES, "recorder", Recorder)
    tracking = setup_artifact_tracking({"root": str(tmp_path / "r"), "backends": ["manifest", "recorder"], "flag": 1})
    recorder = tracking.mirrors[0]
    assert recorder.section["flag"] == 1
    log_artifact(SamplesArtifact(path=tmp_path / "a", num_samples=1), tracking, name="a")
    log_artifact(DerivedArtifact(path=tmp_path / "d", source="a:latest"), tracking, name="d")
    assert recorder.mirrored == [("a:v1", []), ("d:v1", ["a:v1"])]
    assert SamplesArtifact.from_uri("remote-only:v4").num_samples == 9


def test_from_uri_reads_the_tracking_it_is_given_not_the_active_one(tmp_path):
    from nemo_runspec.artifacts import current_tracking
    from nemo_runspec.artifacts.tracking import tracking_from_config

    elsewhere = tracking_from_config({"root": str(tmp_path / "elsewhere")})
    active = setup_artifact_tracking({"root": str(tmp_path / "active")})
    log_artifact(SamplesArtifact(path=tmp_path / "e", num_samples=5), elsewhere, name="s")
    assert current_tracking() is active
    assert SamplesArtifact.from_uri("art://s:latest", tracking=elsewhere).num_samples == 5
    with pytest.raises(ArtifactNotFoundError):
        SamplesArtifact.from_uri("art://s:latest")


def test_without_setup_the_default_tracking_comes_from_the_environment(isolated, monkeypatch, tmp_path):
    from nemo_runspec.artifacts import current_tracking, reset_artifact_tracking

    first = current_tracking()
    assert first.registry.root == isolated / "artifacts" and current_tracking() is first  # kept: one cache a run
    monkeypatch.setenv("NEMOTRON_ARTIFACTS_ROOT", str(tmp_path / "from-env"))
    assert current_tracking() is first
    reset_artifact_tracking()
    assert current_tracking().registry.root == tmp_path / "from-env"
