"""The W&B backend beside the manifest: artifacts, aliases, lineage, resolution and metrics.

Over 400 lines on purpose: every test here reads back the same offline run files through one
reader (``wandb_records``) and one offline fixture; split, they would share them across files.

Offline (``WANDB_MODE=offline``) everything is real: artifacts and metrics are logged through
our API into wandb's offline run files, which are then read back record by record. wandb 0.31
no longer ships a Python reader for them (``wandb.sdk.internal.datastore`` is gone with the
Python internal process), so ``wandb_records`` below reads the file format itself: a 7-byte
``:W&B`` header, then LevelDB-log chunks (crc32c, length, type) in 32 KiB blocks, each record a
``wandb.proto.wandb_internal_pb2.Record``.

Online, no W&B server is reachable from here. The online paths are tested against small fakes
of the public surface they use: ``wandb.Api(overrides=...).artifact(path)`` returning objects
with ``type``, ``version``, ``metadata`` and ``manifest.entries`` (resolution), and
``wandb.init(...)`` returning a run with ``offline``, ``disabled``, ``use_artifact``,
``log_artifact`` and ``finish`` (lineage).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from helpers import run_cli, run_python

SENTINEL = "wandb-key-SENTINEL-3f9c1e"


# -- reading wandb's offline run files -------------------------------------------------------------


def wandb_records(path: Path) -> list:
    """Every Record of a ``run-*.wandb`` transaction log."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    block, pos, pending, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:  # zero padding up to the block's end
            pos += block - pos % block if pos % block else 0
            continue
        pending = chunk if kind in (1, 2) else pending + chunk  # FULL/FIRST start, MIDDLE/LAST add
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def offline_runs(root: Path) -> list[Path]:
    return sorted(root.rglob("offline-run-*/run-*.wandb"))


def logged_artifacts(root: Path) -> dict[str, list]:
    """name -> the artifact records of every offline run under root, in registry version order.

    Each log is its own offline run, and runs started within one second sort by their random id,
    so the order comes from the version our metadata records, not from the run directories."""
    found: dict[str, list] = {}
    for path in offline_runs(root):
        for record in wandb_records(path):
            if record.WhichOneof("record_type") == "artifact":
                found.setdefault(record.artifact.name, []).append(record.artifact)
    for logged in found.values():
        logged.sort(key=lambda artifact: json.loads(artifact.metadata)["nemotron"]["version"])
    return found


def history(path: Path) -> dict[int, dict]:
    rows = {}
    for record in wandb_records(path):
        if record.WhichOneof("record_type") == "history":
            items = {i.nested_key[0] if i.nested_key else i.key: json.loads(i.value_json) for i in record.history.item}
            rows[record.history.step.num] = items
    return rows


# -- one offline scenario, run once in a fresh interpreter ---------------------------------------

SCENARIO = """
import json
from pathlib import Path
from nemo_runspec.artifacts import Artifact, log_artifact, setup_artifact_tracking
from nemotron.train.metrics import MetricsLog

class CorpusArtifact(Artifact):
    num_docs: int
    language: str = "en"

class TokenizerArtifact(Artifact):
    vocab_size: int

class TinyModelArtifact(Artifact):
    step: int
    corpus: str
    def get_input_uris(self):
        return [self.corpus]

for name, text in (("corpus1", "first"), ("corpus2", "second")):
    Path(name).mkdir()
    (Path(name) / "part-0.jsonl").write_text(text)
Path("tok.json").write_text("{}")
Path("model").mkdir()
(Path("model") / "weights.bin").write_bytes(b"0" * 64)

tracking = setup_artifact_tracking({"root": "registry"})   # backends and project: env.toml
log_artifact(CorpusArtifact(path=Path("corpus1"), num_docs=1), tracking, name="corpus")
log_artifact(CorpusArtifact(path=Path("corpus2"), num_docs=2), tracking, name="corpus", aliases=["clean"])
log_artifact(TokenizerArtifact(path=Path("tok.json"), vocab_size=7), tracking, name="tok")
log_artifact(TinyModelArtifact(path=Path("model"), step=3, corpus="corpus:latest"), tracking,
             name="model", inputs=["tok:v1"], aliases=["best"])

run_dir = Path("runs/tiny/abc123")
run_dir.mkdir(parents=True)
job = {"stage": "pretrain", "tracking": {"backend": "wandb"}, "model": {"hidden_size": 8}}
metrics = MetricsLog(run_dir, 0, job)
for step in (1, 2, 3):
    record = {"step": step, "loss": 4.0 - step, "lr": 0.001 * step, "tokens_per_s": 100.0 * step}
    if step == 3:
        record["val_loss"] = 0.5
    metrics.write(record)
metrics.close()
print("SCENARIO DONE")
"""

ENV_TOML = """
[artifacts]
backends = ["manifest", "wandb"]

[wandb]
project = "nemotron-test"
entity = "nemotron-team"
"""


def wandb_free_env(base: Path, **extra: str) -> dict[str, str]:
    """A child environment whose $HOME is empty and whose W&B settings are only ours."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WANDB_", "NEMOTRON_")) and k not in ("HOME", "MPLCONFIGDIR")}
    (base / "home").mkdir(exist_ok=True)
    # WANDB_DIR, WANDB_DATA_DIR and WANDB_CACHE_DIR stay unset: the backend must keep wandb out
    # of $HOME by itself. WANDB_CONFIG_DIR is the user's (login host); here it is the tmp dir.
    env.update(HOME=str(base / "home"), WANDB_CONFIG_DIR=str(base / "wandb-config"),
               MPLCONFIGDIR=str(base / "mpl"), WANDB_API_KEY=SENTINEL, **extra)
    return env


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    base = tmp_path_factory.mktemp("wandb-offline")
    work = base / "work"
    work.mkdir()
    (work / "env.toml").write_text(ENV_TOML)
    done = subprocess.run([sys.executable, "-c", SCENARIO], cwd=work, capture_output=True, text=True,
                          timeout=300, env=wandb_free_env(base, WANDB_MODE="offline"))
    assert "SCENARIO DONE" in done.stdout, done.stderr[-3000:]
    return SimpleNamespace(base=base, work=work, stdout=done.stdout, stderr=done.stderr)


def test_offline_artifacts_carry_our_type_name_aliases_metadata_and_references(offline):
    logged = logged_artifacts(offline.work / "wandb")
    assert sorted(logged) == ["corpus", "model", "tok"]
    assert [len(v) for v in (logged["corpus"], logged["tok"], logged["model"])] == [2, 1, 1]
    corpus1, corpus2 = logged["corpus"]
    assert corpus2.type == "CorpusArtifact" and corpus2.project == "nemotron-test" and corpus2.entity == "nemotron-team"
    assert sorted(corpus1.aliases) == ["latest", "nemotron-v1"]
    assert sorted(corpus2.aliases) == ["clean", "latest", "nemotron-v2"]
    meta = json.loads(corpus2.metadata)
    ours = meta.pop("nemotron")
    assert meta == {"num_docs": 2, "language": "en"}                      # typed fields, top level
    assert ours["version"] == 2 and ours["ref"] == "corpus:v2" and ours["fields"] == ["language", "num_docs"]
    assert set(ours["producer"]) == {"host", "user", "pid", "run_id"} and "git_sha" in ours["code_version"]
    entries = {e.path: e for e in corpus2.manifest.contents}
    part = entries["data/part-0.jsonl"]                                   # the data: a reference ...
    assert part.ref == f"file://{offline.work}/corpus2/part-0.jsonl" and not part.local_path
    uploaded = entries["metadata.json"]                                   # ... metadata.json: a file
    assert uploaded.local_path and json.loads(Path(uploaded.local_path).read_text())["version"] == 2
    tok = {e.path: e for e in logged["tok"][0].manifest.contents}
    assert tok["data"].ref == f"file://{offline.work}/tok.json"           # a single-file artifact


def test_offline_lineage_stays_in_the_manifest_and_inputs_are_in_the_metadata(offline):
    model = logged_artifacts(offline.work / "wandb")["model"][0]
    assert sorted(model.aliases) == ["best", "latest", "nemotron-v1"]
    ours = json.loads(model.metadata)["nemotron"]
    assert ours["inputs"] == ["art://corpus:v2", "art://tok:v1"]          # pinned, as in the manifest
    manifest = json.loads((offline.work / "registry" / "model" / "versions" / "v1.json").read_text())
    assert manifest["inputs"] == ours["inputs"]
    kinds = {r.WhichOneof("record_type") for p in offline_runs(offline.work / "wandb") for r in wandb_records(p)}
    assert "use_artifact" not in kinds                                    # offline W&B cannot use_artifact
    assert "Cannot use artifact" not in offline.stderr


def test_offline_training_metrics_are_in_the_run_history(offline):
    runs = offline_runs(offline.work / "runs" / "tiny" / "abc123")
    assert len(runs) == 1, "the metrics run lives in the training run directory"
    rows = history(runs[0])
    assert sorted(rows) == [1, 2, 3]
    assert rows[1]["loss"] == 3.0 and rows[2]["lr"] == 0.002 and rows[3]["tokens_per_s"] == 300.0
    assert rows[3]["val_loss"] == 0.5 and "val_loss" not in rows[1]
    run = next(r.run for r in wandb_records(runs[0]) if r.WhichOneof("record_type") == "run")
    assert run.project == "nemotron-test" and run.run_id == (offline.work / "runs/tiny/abc123/wandb-run-id").read_text()
    config = {u.key: json.loads(u.value_json) for u in run.config.update}
    assert config["model"] == {"hidden_size": 8}


def test_no_secret_in_any_file_written_and_nothing_in_home(offline):
    written = [p for p in offline.base.rglob("*") if p.is_file()]
    assert any(p.name == "metadata.json" for p in written) and any(p.suffix == ".wandb" for p in written)
    leaking = [str(p) for p in written if SENTINEL.encode() in p.read_bytes()]
    assert leaking == []
    assert SENTINEL not in offline.stdout + offline.stderr
    assert [p for p in (offline.base / "home").rglob("*")] == []         # staging, cache, logs: all ours
    staging = list((offline.work / "wandb" / "data" / "artifacts" / "staging").iterdir())
    assert staging, "offline staging copies wait beside the run for `wandb sync`"


def test_a_logged_artifact_maps_back_to_the_manifest_record(offline):
    from nemo_runspec.registry.record import ArtifactRecord
    from nemo_runspec.registry.wandb_mapping import record_from_wandb

    for name, version in (("corpus", 2), ("tok", 1), ("model", 1)):
        logged = logged_artifacts(offline.work / "wandb")[name][version - 1]
        fetched = FakeArtifact(logged.type, f"v{version - 1}", json.loads(logged.metadata),
                               {e.path: e.ref or None for e in logged.manifest.contents})
        mapped = record_from_wandb(fetched, name, f"nemotron-team/nemotron-test/{name}:v{version - 1}")
        stored = ArtifactRecord.model_validate_json(
            (offline.work / "registry" / name / "versions" / f"v{version}.json").read_text())
        assert mapped == stored


# -- online resolution against a fake wandb.Api ----------------------------------------------------


class FakeArtifact:
    """What ``wandb.Api().artifact()`` returns, reduced to the attributes the backend reads."""

    def __init__(self, type_: str, version: str, metadata: dict, entries: dict[str, str | None]):
        self.type, self.version, self.metadata = type_, version, metadata
        self.manifest = SimpleNamespace(entries={p: SimpleNamespace(ref=r) for p, r in entries.items()})
        self.created_at = "2026-01-02T03:04:05+00:00"
        self.aliases: list[str] = []
        self.saved: list[list[str]] = []

    def save(self):
        self.saved.append(list(self.aliases))


class FakeApi:
    """``wandb.Api`` over a dict of ``entity/project/name:selector`` -> FakeArtifact."""

    artifacts: dict[str, FakeArtifact] = {}
    calls: list[str] = []
    overrides: list[dict] = []

    def __init__(self, overrides=None, **_):
        FakeApi.overrides.append(dict(overrides or {}))

    def artifact(self, name, type=None):
        import wandb

        FakeApi.calls.append(name)
        if name not in self.artifacts:
            message = f"artifact membership {name!r} not found"
            raise wandb.errors.CommError(message, ValueError(message))
        return self.artifacts[name]


def ours(version: int, path: str, **fields) -> dict:
    return {**fields, "nemotron": {"version": version, "ref": f"x:v{version}", "path": path, "inputs": ["art://src:v4"],
                                   "created_at": "2026-01-01T00:00:00+00:00", "producer": None, "code_version": None,
                                   "type_module": None, "metadata": {"note": "hi"}, "fields": sorted(fields)}}


@pytest.fixture
def fake_api(monkeypatch, isolated, tmp_path):
    import wandb

    # Set here so that the backend's defaults (os.environ.setdefault) do not outlive the test.
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))

    shared = FakeArtifact("ModelArtifact", "v1", ours(7, "/ckpt/iter_7", stage="pretrain", step=7),
                          {"metadata.json": None, "data/model/a.pt": "file:///ckpt/iter_7/model/a.pt"})
    foreign = FakeArtifact("dataset", "v4", {"rows": 10}, {"data.csv": None})
    FakeApi.artifacts = {
        "team/proj/shared-model:latest": shared,
        "team/proj/shared-model:nemotron-v7": shared,
        "team/proj/shared-model:prod": shared,
        "team/proj/theirs:v4": foreign,
        "team/proj/theirs:latest": foreign,
    }
    FakeApi.calls, FakeApi.overrides = [], []
    monkeypatch.setattr(wandb, "Api", FakeApi)
    monkeypatch.setenv("WANDB_MODE", "online")
    (isolated / "env.toml").write_text('[wandb]\nproject = "proj"\nentity = "team"\n')
    return FakeApi


def wandb_tracking():
    from nemo_runspec.artifacts import setup_artifact_tracking

    return setup_artifact_tracking({"root": "registry", "backends": ["manifest", "wandb"]})


def test_a_name_the_manifest_lacks_resolves_from_wandb_with_our_version_and_fields(fake_api):
    from nemo_runspec.artifacts import Artifact

    tracking = wandb_tracking()
    record = tracking.resolve("art://shared-model:latest")
    assert fake_api.calls == ["team/proj/shared-model:latest"] and fake_api.overrides == [{"project": "proj", "entity": "team"}]
    assert (record.name, record.version, record.type) == ("shared-model", 7, "ModelArtifact")
    assert record.fields == {"stage": "pretrain", "step": 7} and record.metadata == {"note": "hi"}
    assert record.path == "/ckpt/iter_7" and record.inputs == ["art://src:v4"]
    assert tracking.resolve("shared-model:v7") == record                  # from the backend's cache
    assert tracking.resolve("shared-model:prod") == record
    assert fake_api.calls == ["team/proj/shared-model:latest", "team/proj/shared-model:prod"]
    model = Artifact.from_uri("art://shared-model:v7")                    # the stored type, typed
    assert type(model).__name__ == "ModelArtifact" and model.step == 7 and model.version == 7


def test_resolution_is_cached_for_the_run(fake_api):
    tracking = wandb_tracking()
    first = tracking.resolve("shared-model:latest")
    fake_api.artifacts.clear()                                             # W&B moves on; the run does not
    assert tracking.resolve("art://shared-model:latest") is first
    assert fake_api.calls == ["team/proj/shared-model:latest"]


def test_our_version_maps_to_the_nemotron_alias_and_wandb_numbers_shift_by_one(fake_api):
    tracking = wandb_tracking()
    tracking.resolve("shared-model:v7")
    assert fake_api.calls == ["team/proj/shared-model:nemotron-v7"]
    theirs = tracking.resolve("theirs:v5")                                 # not logged by nemotron: W&B v4
    assert fake_api.calls[1:] == ["team/proj/theirs:nemotron-v5", "team/proj/theirs:v4"]
    assert (theirs.version, theirs.type, theirs.fields, theirs.inputs) == (5, "dataset", {"rows": 10}, [])
    assert theirs.path == "wandb-artifact://team/proj/theirs:v4"           # uploaded files, no reference
    assert tracking.resolve("theirs:latest").version == 5


def test_a_name_missing_everywhere_reports_the_manifest_error(fake_api):
    from nemo_runspec.errors import ArtifactNotFoundError

    tracking = wandb_tracking()
    with pytest.raises(ArtifactNotFoundError, match="no artifact named 'nowhere' in registry"):
        tracking.resolve("nowhere:latest")
    with pytest.raises(ArtifactNotFoundError):
        tracking.resolve("shared-model:v3")                                # neither nemotron-v3 nor W&B's v2
    assert "team/proj/nowhere:latest" in fake_api.calls


def test_the_art_resolver_reads_a_wandb_only_artifact(fake_api):
    from omegaconf import OmegaConf

    import nemo_runspec  # noqa: F401 - registers ${art:...}

    wandb_tracking()
    cfg = OmegaConf.create({"run": {"init": "shared-model:prod"}, "ckpt": "${art:init,path}", "step": "${art:init,step}"})
    assert (cfg.ckpt, cfg.step) == ("/ckpt/iter_7", 7)


def test_a_version_fetched_from_wandb_carries_its_file_manifest_and_verifies(fake_api, tmp_path):
    from nemo_runspec import contents, integrity

    data = tmp_path / "remote-data"
    data.mkdir()
    (data / "train.jsonl").write_text('{"problem": "1 + 1"}\n')
    metadata = ours(3, str(data), num_rows=1)
    metadata["nemotron"]["contents"] = contents.manifest_of(data).model_dump(mode="json")
    fake_api.artifacts["team/proj/fetched:nemotron-v3"] = FakeArtifact(
        "SplitJsonlDataArtifact", "v2", metadata, {"data/train.jsonl": f"file://{data}/train.jsonl"})
    record = wandb_tracking().resolve("fetched:v3")
    assert record.contents is not None and [e.path for e in record.contents.files] == ["train.jsonl"]
    assert integrity.differences(record) == []
    (data / "train.jsonl").write_text('{"problem": "1 + 2"}\n')
    assert [str(d) for d in integrity.differences(record)] == ["train.jsonl: content changed"]


def test_offline_resolution_never_calls_wandb(fake_api, monkeypatch):
    from nemo_runspec.errors import ArtifactNotFoundError

    monkeypatch.setenv("WANDB_MODE", "offline")
    with pytest.raises(ArtifactNotFoundError):
        wandb_tracking().resolve("shared-model:latest")
    assert fake_api.calls == []


def test_the_manifest_answers_first(fake_api, tmp_path):
    from nemo_runspec.artifacts import Artifact, log_artifact

    manifest_only = wandb_tracking()
    manifest_only.mirrors.clear()
    log_artifact(Artifact(path=tmp_path), manifest_only, name="shared-model")
    assert wandb_tracking().resolve("shared-model:latest").type == "Artifact" and fake_api.calls == []


def test_moving_an_alias_moves_it_in_wandb_too(fake_api, tmp_path, capsys):
    from nemo_runspec.artifacts import Artifact, log_artifact

    manifest_only = wandb_tracking()
    manifest_only.mirrors.clear()
    for _ in range(2):
        log_artifact(Artifact(path=tmp_path), manifest_only, name="corpus")
    second = FakeArtifact("Artifact", "v1", ours(2, str(tmp_path)), {})
    second.aliases = ["latest", "nemotron-v2"]
    fake_api.artifacts["team/proj/corpus:nemotron-v2"] = second

    tracking = wandb_tracking()
    assert tracking.set_alias("corpus:v2", "prod").version == 2
    assert tracking.registry.aliases("corpus") == {"prod": 2}
    assert second.saved == [["latest", "nemotron-v2", "prod"]]          # W&B moves it off any other version
    tracking.set_alias("corpus:v2", "prod")
    assert len(second.saved) == 1                                         # already there: no call

    tracking.set_alias("corpus:v1", "prod")                               # v1 never reached W&B
    assert tracking.registry.aliases("corpus") == {"prod": 1}
    assert "alias 'prod' is in the manifest only: W&B project team/proj has no corpus:nemotron-v1" in capsys.readouterr().err
    tracking.set_alias("corpus:v1", "nemotron-v2")
    assert "would shadow our version aliases" in capsys.readouterr().err and len(second.saved) == 1


def test_offline_an_alias_moves_in_the_manifest_and_says_wandb_did_not_follow(fake_api, monkeypatch, tmp_path, capsys):
    from nemo_runspec.artifacts import Artifact, log_artifact

    monkeypatch.setenv("WANDB_MODE", "offline")
    manifest_only = wandb_tracking()
    manifest_only.mirrors.clear()
    log_artifact(Artifact(path=tmp_path), manifest_only, name="corpus")
    wandb_tracking().set_alias("corpus:v1", "prod")
    assert "in the manifest only: W&B is offline" in capsys.readouterr().err and fake_api.calls == []


def test_a_failing_wandb_api_is_one_line_with_a_hint(fake_api, monkeypatch):
    import wandb

    from nemo_runspec.errors import NemotronError

    def unreachable(self, name, type=None):
        raise wandb.errors.CommError("HTTP 503:\nservice unavailable", OSError("503"))

    monkeypatch.setattr(FakeApi, "artifact", unreachable)
    with pytest.raises(NemotronError, match=r"W&B lookup of team/proj/x:latest failed: HTTP 503: service unavailable") as err:
        wandb_tracking().resolve("x:latest")
    assert "wandb login" in err.value.hint


# -- online lineage against a fake run -------------------------------------------------------------


class FakeRun:
    def __init__(self, **init):
        self.init, self.offline, self.disabled = init, False, False
        self.used, self.logged, self.finished = [], [], False

    def use_artifact(self, path):
        self.used.append(path)

    def log_artifact(self, artifact, aliases=None):
        self.logged.append((artifact, aliases))

    def finish(self):
        self.finished = True


def test_online_each_version_is_logged_by_a_run_that_uses_its_inputs(fake_api, monkeypatch, tmp_path):
    import wandb

    from nemo_runspec.artifacts import Artifact, log_artifact

    runs = []
    monkeypatch.setattr(wandb, "init", lambda **kw: runs.append(FakeRun(**kw)) or runs[-1])
    tracking = wandb_tracking()
    source = log_artifact(Artifact(path=tmp_path), tracking, name="src")
    log_artifact(Artifact(path=tmp_path), tracking, name="out", inputs=["src:latest", "shared-model:prod"],
                 aliases=["best"])
    first, second = runs
    assert first.used == [] and second.used == ["team/proj/src:nemotron-v1", "team/proj/shared-model:v1"]
    artifact, aliases = second.logged[0]
    assert (artifact.name, artifact.type, sorted(aliases)) == ("out", "Artifact", ["best", "latest", "nemotron-v1"])
    assert second.finished and second.init["job_type"] == "publish-artifact"
    assert second.init["project"] == "proj" and second.init["entity"] == "team" and second.init["mode"] == "online"
    assert source.version == 1


def test_an_input_missing_from_wandb_leaves_a_warning_not_a_failure(fake_api, monkeypatch, tmp_path, capsys):
    import wandb

    from nemo_runspec.artifacts import Artifact, log_artifact

    class Picky(FakeRun):
        def use_artifact(self, path):
            raise wandb.errors.CommError(f"{path} not found")

    monkeypatch.setattr(wandb, "init", lambda **kw: Picky(**kw))
    tracking = wandb_tracking()
    log_artifact(Artifact(path=tmp_path), tracking, name="old")
    out = log_artifact(Artifact(path=tmp_path), tracking, name="new", inputs=["old:v1"])
    assert out.version == 1 and "W&B lineage of this version lacks old:v1" in capsys.readouterr().err


def test_an_active_run_of_the_project_logs_the_artifact_and_stays_open(fake_api, monkeypatch, tmp_path):
    import wandb

    from nemo_runspec.artifacts import Artifact, log_artifact

    mine = FakeRun()
    mine.project, mine.entity = "proj", "team"
    monkeypatch.setattr(wandb, "run", mine)
    monkeypatch.setattr(wandb, "init", lambda **kw: pytest.fail("no run of our own while the user's is active"))
    log_artifact(Artifact(path=tmp_path / "not-created-yet"), wandb_tracking(), name="out")
    (artifact, aliases), = mine.logged
    assert not mine.finished and sorted(aliases) == ["latest", "nemotron-v1"]
    assert sorted(artifact.manifest.entries) == ["metadata.json"]         # a missing path: no reference


# -- disabled, lazy, bad input ---------------------------------------------------------------------


def test_disabled_mode_writes_nothing_and_never_imports_wandb(isolated, tmp_path):
    (isolated / "env.toml").write_text(ENV_TOML)
    code = textwrap.dedent("""
        import sys
        from pathlib import Path
        from nemo_runspec.artifacts import Artifact, log_artifact, setup_artifact_tracking
        from nemotron.train.metrics import MetricsLog
        Path("d").mkdir()
        tracking = setup_artifact_tracking({"root": "registry"})
        log_artifact(Artifact(path=Path("d")), tracking, name="d")
        log = MetricsLog(Path("d"), 0, {"tracking": {"backend": "wandb"}})
        log.write({"step": 1, "loss": 1.0})
        log.close()
        print("WANDB IMPORTED", "wandb" in sys.modules)
    """)
    done = run_python(code, cwd=isolated, env=wandb_free_env(tmp_path, WANDB_MODE="disabled"))
    assert "WANDB IMPORTED False" in done.stdout, done.stderr
    assert not [p for p in isolated.rglob("*") if "wandb" in p.name]
    assert (isolated / "registry" / "d" / "versions" / "v1.json").is_file()


def test_wandb_is_imported_on_first_use_only(isolated, tmp_path):
    (isolated / "env.toml").write_text(ENV_TOML)
    code = textwrap.dedent("""
        import sys
        from nemo_runspec.artifacts import setup_artifact_tracking
        tracking = setup_artifact_tracking({"root": "registry"})
        print("BACKENDS", [b.name for b in tracking.backends], "wandb" in sys.modules)
        try:
            tracking.resolve("missing:latest")
        except Exception as err:
            print("RESOLVE", type(err).__name__)
        print("AFTER OFFLINE RESOLVE", "wandb" in sys.modules)
    """)
    done = run_python(code, cwd=isolated, env=wandb_free_env(tmp_path, WANDB_MODE="offline"))
    assert "BACKENDS ['manifest', 'wandb'] False" in done.stdout, done.stderr
    assert "RESOLVE ArtifactNotFoundError" in done.stdout and "AFTER OFFLINE RESOLVE False" in done.stdout


def test_wandb_without_the_manifest_is_refused(isolated):
    from nemo_runspec.artifacts import setup_artifact_tracking
    from nemo_runspec.errors import ConfigError

    with pytest.raises(ConfigError, match="leaves out 'manifest'"):
        setup_artifact_tracking({"backends": ["wandb"], "wandb": {"project": "p"}})


def test_wandb_not_importable_is_a_one_line_config_error(isolated, monkeypatch):
    from nemo_runspec.artifacts import setup_artifact_tracking
    from nemo_runspec.errors import ConfigError
    from nemotron.train.metrics import MetricsLog

    monkeypatch.setitem(sys.modules, "wandb", None)  # what `import wandb` sees when it is absent
    monkeypatch.delenv("WANDB_MODE", raising=False)
    with pytest.raises(ConfigError) as err:
        setup_artifact_tracking({"backends": ["manifest", "wandb"], "wandb": {"project": "p"}})
    assert "pip install wandb" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="pip install wandb"):
        MetricsLog(isolated, 0, {"tracking": {"backend": "wandb", "project": "p"}})


def test_a_missing_project_names_where_to_set_it(isolated, monkeypatch):
    from nemo_runspec.artifacts import setup_artifact_tracking
    from nemo_runspec.errors import ConfigError
    from nemotron.train.metrics import MetricsLog

    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    with pytest.raises(ConfigError) as err:
        setup_artifact_tracking({"backends": ["manifest", "wandb"]})
    assert "[wandb] project" in str(err.value) and "artifacts.wandb.project" in str(err.value)
    with pytest.raises(ConfigError, match=r"tracking\.project"):
        MetricsLog(isolated, 0, {"tracking": {"backend": "wandb", "project": None}})


@pytest.mark.parametrize("section, match", [
    ({"project": "p", "api_key": "x"}, "credentials do not belong"),
    ({"project": "p", "mode": "sometimes"}, "not one of online, offline, disabled"),
])
def test_bad_wandb_settings_are_config_errors(isolated, monkeypatch, section, match):
    from nemo_runspec.artifacts import setup_artifact_tracking
    from nemo_runspec.errors import ConfigError

    monkeypatch.delenv("WANDB_MODE", raising=False)
    with pytest.raises(ConfigError, match=match):
        setup_artifact_tracking({"backends": ["manifest", "wandb"], "wandb": section})


def test_an_unknown_tracker_is_a_config_error(isolated):
    from nemo_runspec.errors import ConfigError
    from nemotron.train.metrics import MetricsLog

    with pytest.raises(ConfigError, match="tracking.backend='mlflow'"):
        MetricsLog(isolated, 0, {"tracking": {"backend": "mlflow"}})


# -- the whole pipeline through the command line ---------------------------------------------------


@pytest.mark.slow
def test_pretraining_offline_logs_data_model_and_metrics_to_wandb_and_no_secret(isolated, tmp_path):
    (isolated / "env.toml").write_text('[wandb]\nproject = "nemotron-test"\n')
    env = wandb_free_env(tmp_path, WANDB_MODE="offline")
    wandb_on = ["artifacts.backends=[manifest,wandb]"]
    done = run_cli("nano3", "data", "prep", "pretrain", *wandb_on, cwd=isolated, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    done = run_cli("nano3", "pretrain", "train.steps=4", "train.checkpoint_interval=4", "train.eval_interval=2",
                   *wandb_on, "tracking=wandb", cwd=isolated, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    logged = logged_artifacts(isolated / "wandb")
    assert {n: [a.type for a in v] for n, v in logged.items()} == {
        "nano3-pretrain-data-tiny": ["PretrainBlendsArtifact"], "nano3-pretrain-model-tiny": ["ModelArtifact"]}
    model = json.loads(logged["nano3-pretrain-model-tiny"][0].metadata)
    assert model["stage"] == "pretrain" and model["nemotron"]["inputs"] == ["art://nano3-pretrain-data-tiny:v1"]
    (run,) = offline_runs(isolated / "runs" / "nano3-pretrain-model-tiny")
    rows = history(run)
    assert sorted(rows) == [1, 2, 3, 4] and "val_loss" in rows[2] and rows[4]["loss"] > 0
    job = json.loads(next((isolated / "runs" / "nano3-pretrain-model-tiny").glob("*/job.json")).read_text())
    assert job["tracking"]["backend"] == "wandb"
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not [str(p) for p in written if SENTINEL.encode() in p.read_bytes()]
    assert SENTINEL not in done.stdout + done.stderr
    assert list((tmp_path / "home").rglob("*")) == []
