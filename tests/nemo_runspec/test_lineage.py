import pytest

from nemo_runspec import lineage
from nemo_runspec.artifacts import Artifact, log_artifact
from nemo_runspec.errors import ArtifactNotFoundError


class Node(Artifact):
    parents: list[str] = []

    def get_input_uris(self):
        return self.parents


@pytest.fixture
def chain(tracking, tmp_path):
    """raw file -> data:v1 -> model:v1 -> tuned:v1 <- sft-data:v1; data:v2 unused."""
    log = lambda name, *parents: log_artifact(Node(path=tmp_path / name, parents=list(parents)), tracking, name=name)
    log("data", "/raw/corpus.jsonl")
    log("model", "data:latest")
    log("sft-data", "/raw/chat.jsonl")
    log("tuned", "model:v1", "sft-data:latest")
    log("data", "/raw/corpus-2.jsonl")
    return tracking


def test_ancestors_reach_raw_inputs_through_pinned_versions(chain):
    tree = lineage.ancestors(chain, "tuned:latest")
    assert tree.record.ref == "tuned:v1"
    assert [n.uri for n in tree.links] == ["art://model:v1", "art://sft-data:v1"]
    model = tree.links[0]
    assert [n.uri for n in model.links] == ["art://data:v1"]
    assert [n.uri for n in model.links[0].links] == ["/raw/corpus.jsonl"]
    assert model.links[0].links[0].record is None


def test_descendants_follow_consumers(chain):
    tree = lineage.descendants(chain, "data:v1")
    assert [n.uri for n in tree.links] == ["art://model:v1"]
    assert [n.uri for n in tree.links[0].links] == ["art://tuned:v1"]
    assert lineage.descendants(chain, "data:v2").links == []


def test_mermaid_has_one_node_per_version_and_edges_from_input_to_output(chain):
    text = lineage.to_mermaid(lineage.ancestors(chain, "tuned:v1"))
    lines = text.splitlines()
    assert lines[0] == "flowchart TB"
    ids = {line.split("[")[0].strip(): line for line in lines[1:] if "[" in line}
    by_label = {next(k for k, v in ids.items() if label in v): label for label in ("tuned:v1", "model:v1", "data:v1")}
    inv = {v: k for k, v in by_label.items()}
    assert f"    {inv['model:v1']} --> {inv['tuned:v1']}" in lines
    assert f"    {inv['data:v1']} --> {inv['model:v1']}" in lines
    assert len(ids) == 6  # tuned, model, sft-data, data, two raw files


def test_json_nests_inputs(chain):
    data = lineage.to_json(lineage.ancestors(chain, "model:v1"))
    assert data["name"] == "model" and data["version"] == 1 and data["type"] == "Node"
    assert data["inputs"][0]["inputs"][0] == {"uri": "/raw/corpus.jsonl", "inputs": []}


def test_rich_tree_renders_every_node(chain):
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(lineage.to_rich_tree(lineage.ancestors(chain, "tuned:v1")))
    text = console.export_text()
    for label in ("tuned:v1", "model:v1", "sft-data:v1", "data:v1", "/raw/corpus.jsonl", "/raw/chat.jsonl"):
        assert label in text


def test_unknown_version_raises(chain):
    with pytest.raises(ArtifactNotFoundError):
        lineage.ancestors(chain, "tuned:v9")
