"""Every config group has one schema: a wrong type, an unknown key and an out-of-range value
each give a one-line error naming the key, before anything runs (nemotron.schemas)."""

import subprocess
import sys

import pytest

from nemo_runspec.errors import ConfigError
from nemo_runspec.hydra_app import compose
from nemo_runspec.schema import validate
from nemotron.recipes import recipe
from nemotron.schemas.model import ModelConfig
from nemotron.schemas.optimizer import OptimizerConfig
from nemotron.stages.steps import STEPS, check_groups

# (recipe, override, the error's first line)
BAD = [
    # model
    ("pretrain", "model.num_layers=abc", "model.num_layers must be an integer >= 1, got 'abc'"),
    ("pretrain", "+model.num_layerz=2", "unknown key model.num_layerz"),
    ("pretrain", "model.num_layers=0", "model.num_layers must be an integer >= 1, got 0"),
    ("pretrain", "model.num_query_groups=3", "model: num_attention_heads=4 is not a multiple of num_query_groups=3"),
    # train
    ("pretrain", "train.steps=abc", "train.steps must be an integer >= 1, got 'abc'"),
    ("pretrain", "+train.foo=1", "unknown key train.foo"),
    ("sft", "train.micro_batch_size=-2", "train.micro_batch_size must be an integer >= 1, got -2"),
    ("pretrain", "train.device=tpu", "train.device must be one of 'auto', 'cpu', 'cuda', got 'tpu'"),
    # optimizer
    ("pretrain", "optimizer.lr=fast", "optimizer.lr must be a number > 0, got 'fast'"),
    ("pretrain", "+optimizer.momentum=0.9", "unknown key optimizer.momentum"),
    ("pretrain", "optimizer.lr=-1", "optimizer.lr must be a number > 0, got -1"),
    ("pretrain", "optimizer.name=lion9", "optimizer.name must be one of 'adamw', 'adam', got 'lion9'"),
    # data_prep: pretrain, sft, rl
    ("data_prep_pretrain", "data_prep.add_bos=maybe", "data_prep.add_bos must be true or false, got 'maybe'"),
    ("data_prep_pretrain", "+data_prep.shuffle=true", "unknown key data_prep.shuffle"),
    ("data_prep_pretrain", "data_prep.shards_per_dataset=0", "data_prep.shards_per_dataset must be an integer >= 1, got 0"),
    ("data_prep_sft", "data_prep.pack_size=big", "data_prep.pack_size must be an integer >= 2, got 'big'"),
    ("data_prep_sft", "+data_prep.pad=0", "unknown key data_prep.pad"),
    ("data_prep_sft", "data_prep.packing=random", "data_prep.packing must be one of 'first_fit_decreasing', "
                                                  "'best_fit_decreasing', 'first_fit_shuffle', got 'random'"),
    ("data_prep_rl", "data_prep.seed=x", "data_prep.seed must be an integer >= 0, got 'x'"),
    ("data_prep_rl", "+data_prep.dedupe=false", "unknown key data_prep.dedupe"),
    ("data_prep_rl", "data_prep.on_error=ignore", "data_prep.on_error must be one of 'fail', 'skip', got 'ignore'"),
    ("data_prep_pretrain", "data_prep.blend.0.weight=-1", "data_prep.blend[0].weight must be a number >= 0, got -1"),
    # rl
    ("rl", "rl.steps=many", "rl.steps must be an integer >= 1, got 'many'"),
    ("rl", "+rl.gamma=0.9", "unknown key rl.gamma"),
    ("rl", "rl.num_generations=1", "rl.num_generations must be an integer >= 2, got 1"),
    ("rl", "rl.backend=verl", "rl.backend must be one of 'trl', 'nemo_rl', got 'verl'"),
    # tokenizer
    ("data_prep_sft", "tokenizer.path=3", "tokenizer.path must be a string, got 3"),
    ("data_prep_sft", "+tokenizer.revision=main", "unknown key tokenizer.revision"),
    # launcher, tracking, artifacts
    ("pretrain", "launcher.executor=k8s", "launcher.executor must be one of 'local', 'slurm', got 'k8s'"),
    ("pretrain", "+launcher.nodes=2", "unknown key launcher.nodes"),
    ("pretrain", "tracking=wandb tracking.mode=loud", "tracking.mode must be one of 'online', 'offline', 'disabled' "
                                                      "(or null), got 'loud'"),
    ("pretrain", "+tracking.api_key=x", "unknown key tracking.api_key"),
    ("pretrain", "artifacts.root=3", "artifacts.root must be a string (or null), got 3"),
    ("pretrain", "+artifacts.cache=x", "unknown key artifacts.cache"),
]


@pytest.mark.parametrize(("recipe_name", "override", "message"), BAD, ids=[b[1] for b in BAD])
def test_a_bad_value_in_each_group_is_one_line_naming_the_key(recipe_name, override, message):
    cfg = compose(recipe("nano3", recipe_name), override.split())
    with pytest.raises(ConfigError) as err:
        check_groups(recipe_name, cfg)
    assert str(err.value) == message
    assert "\n" not in str(err.value) and err.value.hint


@pytest.mark.parametrize("family", ["nano3", "super3"])
@pytest.mark.parametrize("step", [s.recipe for s in STEPS])
def test_every_shipped_recipe_passes_its_schema(family, step):
    for variant in ("tiny", "full"):
        cfg = compose(recipe(family, step), [f"variant={variant}"])
        check_groups(step, cfg)  # no error; groups that read artifacts are checked when the step runs


def test_the_shipped_model_sizes_validate():
    from omegaconf import OmegaConf

    from nemotron.recipes import conf_dir

    for size in ("tiny", "nano3", "super3"):
        model = validate(ModelConfig, OmegaConf.to_container(OmegaConf.load(conf_dir() / "model" / f"{size}.yaml")), "model")
        assert model.name == size


def test_cross_field_rules():
    with pytest.raises(ConfigError, match="min_lr=0.1 is above lr=0.01"):
        validate(OptimizerConfig, {"lr": 0.01, "min_lr": 0.1}, "optimizer")
    hybrid = {"name": "h", "architecture": "hybrid", "num_layers": 3, "hidden_size": 8, "ffn_hidden_size": 8,
              "num_attention_heads": 2, "seq_length": 8}
    with pytest.raises(ConfigError, match="needs hybrid_override_pattern"):
        validate(ModelConfig, hybrid, "model")
    with pytest.raises(ConfigError, match="hybrid_override_pattern has 2 layers, num_layers=3"):
        validate(ModelConfig, {**hybrid, "hybrid_override_pattern": "M*"}, "model")
    with pytest.raises(ConfigError, match=r"unknown layer symbol\(s\) \['X'\]"):
        validate(ModelConfig, {**hybrid, "hybrid_override_pattern": "M*X"}, "model")


def test_tensor_parallel_must_divide_heads_before_a_process_starts():
    from omegaconf import OmegaConf

    from nemotron.schemas.steps import PretrainStep

    cfg = compose(recipe("nano3", "pretrain"), ["train.tensor_parallel=3", "~data"])
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain["data"] = {"blend_path": "b.json", "vocab_size": 8, "eod_id": 0, "tokenizer_sha256": "x"}
    with pytest.raises(ConfigError, match="train.tensor_parallel=3 does not divide model.num_attention_heads=4"):
        validate(PretrainStep, plain)


@pytest.mark.parametrize("override", ["train.steps=abc", "optimizer.lr=-1", "model.num_layers=0",
                                      "optimizer.name=lion9"])
def test_the_cli_refuses_in_one_line_and_leaves_no_run_directory(tmp_path, override):
    """Measured before the schemas: each of these started the training process, failed inside
    it with two error lines and left a run directory."""
    done = subprocess.run([sys.executable, "-m", "nemotron.cli.app", "nano3", "pretrain", override],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "NEMOTRON_ARTIFACTS_ROOT": str(tmp_path / "artifacts"),
                               "NEMOTRON_RUNS_ROOT": str(tmp_path / "runs")})
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[0].startswith(f"error: {override.split('=')[0]} must be"), done.stderr
    assert len(lines) == 2 and lines[1].startswith("hint:"), done.stderr
    assert not (tmp_path / "runs" / "nano3-pretrain-model-tiny").exists()


@pytest.mark.parametrize("step", ["data_prep_pretrain", "data_prep_sft", "data_prep_rl", "rl"])
def test_steps_that_send_no_metrics_have_no_tracking_group(step):
    """A key that is accepted must do something: only the Megatron trainings send metrics."""
    assert "tracking" not in compose(recipe("nano3", step), [])
    with pytest.raises(ConfigError, match="Could not override 'tracking'"):
        compose(recipe("nano3", step), ["tracking=wandb"])
