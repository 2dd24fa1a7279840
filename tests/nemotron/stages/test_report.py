"""``nemotron.stages.report`` and ``nemotron artifact report`` on a hand-logged chain:
pretrain -> SFT -> RL models, their metrics files and evaluations, plus records that must
stay out of the report (an older eval version, an eval of another model)."""

import base64
import json
from pathlib import Path

import pytest

from helpers import run_cli
from nemo_runspec.artifacts import log_artifact
from nemo_runspec.errors import ConfigError
from nemotron.kit.artifacts.eval_result import EvalResultArtifact
from nemotron.kit.artifacts.model import ModelArtifact
from nemotron.stages import report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def metrics(directory: Path, records: list[dict]) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return {"metrics": str(directory / "metrics.jsonl"), "run_dir": str(directory)}


def model(tracking, tmp_path, name, stage, parent, records, run_name=None):
    run = tmp_path / "runs" / (run_name or name)
    return log_artifact(ModelArtifact(path=run / "ckpt", stage=stage, step=len(records), parent_model=parent,
                                      training_data=f"/data/{stage}", metadata=metrics(run, records)),
                        tracking, name=name)


def evaluation(tracking, tmp_path, name, model_ref, **fields):
    return log_artifact(EvalResultArtifact(path=tmp_path / "evals" / name, model=model_ref, data="/data/held-out",
                                           **fields), tracking, name=name)


@pytest.fixture
def chain_registry(tracking, tmp_path):
    pretrain = [{"step": s, "loss": 8 - s / 20, "lr": 1e-3, **({"val_loss": 8.2 - s / 20} if s % 20 == 0 else {})}
                for s in range(1, 61)]
    model(tracking, tmp_path, "pre", "pretrain", None, pretrain, run_name="pre&m")  # a page must escape it
    model(tracking, tmp_path, "sft", "sft", "pre:latest",  # unpinned: the pinned input says which version
          [{"step": s, "loss": 3 - s / 10, "lr": 1e-4} for s in range(1, 21)])
    model(tracking, tmp_path, "rl", "rl", "art://sft:v1",
          [{"step": s, "reward": s / 10, "kl": 0.01, "loss": 0.1, "lr": 1e-5, "reward/math_verify": s / 20,
            "reward/format": 1.0} for s in range(1, 11)])
    model(tracking, tmp_path, "other", "rl", "art://sft:v1", [])
    loss = {"evaluation": "loss", "split": "valid"}
    evaluation(tracking, tmp_path, "ev-init", "art://pre:v1", weights="initial", loss=7.5, **loss)
    evaluation(tracking, tmp_path, "ev-pre", "art://pre:v1", loss=4.5, **loss)
    evaluation(tracking, tmp_path, "ev-pre", "art://pre:v1", loss=4.25, **loss)  # v2 supersedes v1
    accuracy = {"evaluation": "accuracy", "split": "test", "prompts": 8}
    evaluation(tracking, tmp_path, "ev-sft", "art://sft:v1", accuracy=0.25, format_rate=0.5,
               rewards={"math_verify": 0.25}, **accuracy)
    evaluation(tracking, tmp_path, "ev-rl", "rl:latest", accuracy=0.3, format_rate=0.875, samples=4, pass_at_k=0.4,
               sampled_accuracy=0.2, **accuracy)
    evaluation(tracking, tmp_path, "ev-rl", "art://other:v1", accuracy=0.9, format_rate=1.0, **accuracy)
    return tracking


def test_collect_walks_parents_root_first_with_the_newest_eval_of_each_kind(chain_registry):
    chain = report.collect(chain_registry, "rl")
    assert [m.ref for m in chain.models] == ["pre:v1", "sft:v1", "rl:v1"]
    assert [m.stage for m in chain.models] == ["pretrain", "sft", "rl"]
    pre, sft, rl = chain.models
    assert sorted(e.ref for e in pre.evals) == ["ev-init:v1", "ev-pre:v2"]
    assert pre.eval_of("loss").ref == "ev-pre:v2" and pre.eval_of("loss", "initial").ref == "ev-init:v1"
    assert [e.ref for e in sft.evals] == ["ev-sft:v1"]
    assert [e.ref for e in rl.evals] == ["ev-rl:v1"]  # ev-rl:v2 evaluated "other"
    assert [m.ref for m in report.collect(chain_registry, "sft:v1").models] == ["pre:v1", "sft:v1"]


def test_rows_and_table_show_the_untrained_baseline_and_percentages(chain_registry):
    chain = report.collect(chain_registry, "rl:v1")
    rows = report.rows(chain)
    assert [r["model"] for r in rows] == ["pre:v1 untrained", "pre:v1", "sft:v1", "rl:v1"]
    assert rows[0]["loss"] == 7.5 and rows[1]["loss"] == 4.25 and rows[3]["pass_at_k"] == 0.4
    assert [report.cells(r) for r in rows] == [
        ("pre:v1 untrained", "initial", "7.5000", "-", "-", "-"),
        ("pre:v1", "pretrain", "4.2500", "-", "-", "-"),
        ("sft:v1", "sft", "-", "50.0%", "25.0%", "-"),
        ("rl:v1", "rl", "-", "87.5%", "30.0%", "20.0% (pass@4 40.0%)"),
    ]
    table = report.table(chain)
    assert [c.header for c in table.columns] == ["model", "stage", "held-out loss", "ends turn", "accuracy",
                                                    "sampled accuracy"]
    assert table.row_count == 4


def test_a_ref_that_is_not_a_model_is_a_one_line_config_error(chain_registry):
    with pytest.raises(ConfigError) as raised:
        report.collect(chain_registry, "ev-pre:v1")
    message = str(raised.value)
    assert "ev-pre:v1" in message and "EvalResultArtifact" in message and "\n" not in message


def test_write_report_makes_a_png_and_a_page_that_embeds_it(chain_registry, tmp_path):
    import matplotlib.image

    chain = report.collect(chain_registry, "rl:v1")
    png, page = report.write_report(chain, tmp_path / "out")
    assert (png.name, page.name) == ("report.png", "report.html")
    data = png.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    pixels = matplotlib.image.imread(png)
    assert pixels.shape[0] == 800 and pixels.shape[1] == 1200  # 12x8 in at 100 dpi
    text = page.read_text()
    assert "data:image/png;base64," + base64.b64encode(data).decode() in text
    for ref in ("pre:v1 untrained", "art://sft:v1", "art://rl:v1", "ev-pre:v2", "20.0% (pass@4 40.0%)"):
        assert ref in text
    assert "runs/pre&amp;m/ckpt" in text and "pre&m" not in text  # every text is escaped
    assert str(tmp_path / "runs" / "rl" / "ckpt") in text
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.html", "report.png"]  # no temp files


def test_a_chain_without_sft_or_rl_still_reports(chain_registry, tmp_path):
    chain = report.collect(chain_registry, "pre:v1")
    assert [r["model"] for r in report.rows(chain)] == ["pre:v1 untrained", "pre:v1"]
    png, _ = report.write_report(chain, tmp_path / "pre")
    assert png.read_bytes().startswith(PNG_SIGNATURE)


def test_cli_prints_the_table_and_where_the_files_are(chain_registry, isolated):
    done = run_cli("artifact", "report", "rl", "--root", str(chain_registry.registry.root), cwd=isolated)
    assert done.returncode == 0, done.stderr
    for text in ("pre:v1 untrained", "7.5000", "87.5%", "20.0% (pass@4 40.0%)",
                 "report: reports/rl-v1/report.png", "page: reports/rl-v1/report.html"):
        assert text in done.stdout
    assert (isolated / "reports" / "rl-v1" / "report.png").is_file()


def test_cli_refuses_a_ref_that_is_not_a_model_in_one_line(chain_registry, isolated):
    done = run_cli("artifact", "report", "ev-sft", "--root", str(chain_registry.registry.root),
                   "--out", str(isolated / "out"), cwd=isolated)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), done.stderr
    assert "ev-sft" in lines[0] and "not a ModelArtifact" in lines[0]
    assert not (isolated / "out").exists()
