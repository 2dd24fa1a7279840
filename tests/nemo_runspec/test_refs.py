import pytest

from nemo_runspec.errors import InvalidNameError
from nemo_runspec.refs import ArtifactRef, is_artifact_ref, validate_alias, validate_name


@pytest.mark.parametrize("text,name,selector", [
    ("art://my-data:latest", "my-data", "latest"),
    ("art://ModelArtifact-sft:v3", "ModelArtifact-sft", "v3"),
    ("super3-pretrain-data-tiny:latest", "super3-pretrain-data-tiny", "latest"),
    ("my-data", "my-data", "latest"),
    ("art://my.data_1:production", "my.data_1", "production"),
])
def test_parse_accepts_documented_forms(text, name, selector):
    ref = ArtifactRef.parse(text)
    assert (ref.name, ref.selector) == (name, selector)
    assert ArtifactRef.parse(ref.uri) == ref


def test_version_number_only_for_vN():
    assert ArtifactRef.parse("x:v12").version == 12
    assert ArtifactRef.parse("x:latest").version is None
    assert ArtifactRef.parse("x:best").version is None


@pytest.mark.parametrize("text", [
    "", "art://", "art://:v1", "art://a:", "art://a:b:c", "art://a/b:v1", "s3://bucket/x",
    "art://../etc:v1", "art://a..b", "art://.hidden", "art://a:v0", "art://a:../x", "a b",
])
def test_parse_rejects_malformed(text):
    with pytest.raises(InvalidNameError) as err:
        ArtifactRef.parse(text)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["a/b", "..", "a..b", "../x", ".x", "-x", "x" * 129, "a\\b", "a\x00b", "é"])
def test_names_that_could_escape_or_are_outside_the_charset_are_rejected(name):
    with pytest.raises(InvalidNameError):
        validate_name(name)


@pytest.mark.parametrize("alias", ["latest", "v1", "v42"])
def test_reserved_aliases(alias):
    with pytest.raises(InvalidNameError):
        validate_alias(alias)


def test_is_artifact_ref_tells_refs_from_paths():
    assert is_artifact_ref("art://x:v1")
    assert is_artifact_ref("x:latest")
    assert not is_artifact_ref("/data/corpus.jsonl")
    assert not is_artifact_ref("corpus.jsonl")
    assert not is_artifact_ref("hf://gpt2")
    assert not is_artifact_ref("dir/x:v1")
