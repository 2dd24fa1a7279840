"""Every Python and YAML snippet of docs/spec/artifacts-and-lineage.txt runs as written.

The snippets below are compared with the spec text, so an edit to either fails this test.
The spec leaves ``config`` undefined and writes to /output/data: the preamble defines
``config`` (a registry under the test's directory) and the path is pointed somewhere writable.
"""

import subprocess
import sys
from pathlib import Path

SPEC = Path(__file__).resolve().parents[2] / "docs" / "spec" / "artifacts-and-lineage.txt"

CUSTOM = '''from pathlib import Path
from typing import Annotated
from pydantic import Field
from nemotron.kit.artifacts.base import Artifact


class MyDataArtifact(Artifact):
    """Custom data artifact with typed metadata."""

    num_samples: Annotated[int, Field(ge=0, description="Number of samples")]
    source_url: Annotated[str | None, Field(default=None)]
'''

SAVING = '''from nemo_runspec.artifacts import setup_artifact_tracking, log_artifact

tracking = setup_artifact_tracking(config)

artifact = MyDataArtifact(path=Path("/output/data"), num_samples=10000)
log_artifact(artifact, tracking, name="my-data")
'''

LOADING = '''artifact = MyDataArtifact.from_uri("art://my-data:latest")
print(artifact.path)         # /output/data
print(artifact.num_samples)  # 10000 -- IDE autocomplete works
'''

LINEAGE = '''class ProcessedDataArtifact(Artifact):
    source_artifact: str

    def get_input_uris(self) -> list[str]:
        return [self.source_artifact]
'''

RESOLVER_YAML = '''run:
  data: super3-pretrain-data-tiny:latest

recipe:
  per_split_data_args_path: ${art:data,path}/blend.json
  seq_length: ${art:data,pack_size}
'''


def test_snippets_are_verbatim_copies_of_the_spec():
    spec = SPEC.read_text()
    for snippet in (CUSTOM, SAVING, LOADING, LINEAGE, RESOLVER_YAML):
        assert snippet.strip() in spec


def run(script: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=cwd, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_save_then_load_in_separate_processes(tmp_path):
    """The loading process sets nothing up: it finds the default registry, ./artifacts."""
    out = tmp_path / "output" / "data"
    preamble = f'config = {{"artifacts": {{"root": "{tmp_path / "artifacts"}"}}}}\n'
    run(preamble + CUSTOM + SAVING.replace("/output/data", str(out)), tmp_path)
    printed = run(CUSTOM + LOADING, tmp_path)
    assert printed.splitlines() == [str(out), "10000"]
    assert (out / "metadata.json").is_file()


def test_lineage_snippet_pins_its_source(tmp_path):
    out = tmp_path / "data"
    script = (
        f'config = {{"artifacts": {{"root": "{tmp_path / "registry"}"}}}}\n' + CUSTOM + SAVING.replace("/output/data", str(out))
        + LINEAGE
        + f'processed = ProcessedDataArtifact(path=Path("{tmp_path / "processed"}"), source_artifact="art://my-data:latest")\n'
        + 'log_artifact(processed, tracking, name="processed")\n'
        + 'print(tracking.resolve("processed:latest").inputs)\n'
    )
    assert run(script, tmp_path).strip() == "['art://my-data:v1']"


def test_resolver_snippet(tmp_path, tracking):
    from omegaconf import OmegaConf

    from nemo_runspec.artifacts import log_artifact
    from nemotron.kit import PretrainBlendsArtifact
    from nemotron.kit.artifacts import TokenizerInfo

    data = tmp_path / "pretrain-data"
    log_artifact(PretrainBlendsArtifact(
        path=data, blend_path=data / "blend.json", total_tokens=1, total_sequences=1, num_shards=1,
        tokenizer=TokenizerInfo(path="/t", sha256="0", vocab_size=2), metadata={"pack_size": 4096},
    ), tracking, name="super3-pretrain-data-tiny")
    cfg = OmegaConf.create(RESOLVER_YAML)
    assert OmegaConf.to_container(cfg.recipe, resolve=True) == {
        "per_split_data_args_path": f"{data}/blend.json", "seq_length": 4096,
    }
