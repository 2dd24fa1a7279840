"""``nemotron <family> data prep sft`` through the real command line."""

import json

import pytest

from helpers import REPO, run_cli

SAMPLES = REPO / "nemotron" / "data" / "samples" / "sft"


def test_sft_prep_logs_a_typed_artifact_whose_pack_size_resolves(isolated):
    done = run_cli("nano3", "data", "prep", "sft", cwd=isolated)
    assert done.returncode == 0, done.stderr
    from nemo_runspec.artifacts import setup_artifact_tracking
    from nemotron.kit import SFTDataArtifact

    tracking = setup_artifact_tracking({"root": str(isolated / "artifacts")})
    art = SFTDataArtifact.from_uri("nano3-sft-data-tiny:latest")
    assert art.pack_size == 128 and art.num_packs == sum(s.num_packs for s in art.splits.values())
    assert 50 < art.packing_efficiency <= 100 and art.num_sequences > 200
    assert art.chat_template.name == "chatml" and len(art.chat_template.sha256) == 64
    meta = art.metadata
    assert meta["algorithm"] == "first_fit_shuffle" and meta["loss_mask_alignment"] == "token"
    assert meta["packing_factor"] == pytest.approx(art.num_sequences / art.num_packs, abs=1e-3)
    assert meta["truncated"] > 0 and meta["dropped"] == 0
    inputs = tracking.resolve("nano3-sft-data-tiny:v1").inputs
    assert str(SAMPLES / "sums.jsonl") in inputs and art.tokenizer.path in inputs

    shown = run_cli("nano3", "data", "prep", "sft", "--dry-run", "+run.data=nano3-sft-data-tiny:latest",
                    "+seq=${art:data,pack_size}", cwd=isolated)
    assert "seq: 128" in shown.stdout
    again = run_cli("nano3", "data", "prep", "sft", "data_prep.workers=2", cwd=isolated)
    assert "already holds this output" in again.stdout  # workers change nothing in the output


@pytest.mark.parametrize("args,fragment", [
    (["data_prep.pack_size=1"], "data_prep.pack_size must be an integer >= 2, got 1"),
    (["data_prep.packing=next_fit"], "data_prep.packing must be one of 'first_fit_decreasing', 'best_fit_decreasing', 'first_fit_shuffle', got 'next_fit'"),
    (["data_prep.chat_template=nope"], "chat template 'nope'"),
    (["data_prep.workers=abc"], "data_prep.workers must be an integer >= 0, got 'abc'"),
    (["data_prep.workers=-1"], "data_prep.workers must be an integer >= 0, got -1"),
])
def test_bad_settings_are_one_line_errors(isolated, args, fragment):
    done = run_cli("nano3", "data", "prep", "sft", *args, cwd=isolated)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 2 and fragment in lines[0], done.stderr
    assert not (isolated / "artifacts").exists()


def test_bad_conversation_names_file_and_line(isolated, tmp_path):
    corpus = tmp_path / "chat.jsonl"
    corpus.write_text(json.dumps({"input": "q", "output": "a"}) + "\n" + json.dumps({"messages": "oops"}) + "\n")
    blend = f"data_prep.blend=[{{name: chat, path: '{corpus}', split: train}}]"
    done = run_cli("nano3", "data", "prep", "sft", blend, cwd=isolated)
    assert done.returncode == 1 and f"{corpus}:2: 'messages' must be a non-empty list" in done.stderr
    skipped = run_cli("nano3", "data", "prep", "sft", blend, "data_prep.on_error=skip", cwd=isolated)
    assert skipped.returncode == 0, skipped.stderr
    record = json.loads((isolated / "artifacts/nano3-sft-data-tiny/versions/v1.json").read_text())
    assert record["metadata"]["skipped"] == {"bad_record": 1}
