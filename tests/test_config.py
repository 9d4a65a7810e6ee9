"""Config loading: defaults, YAML, strict dotted overrides, refusals naming the key."""

import pytest
import yaml

from attncoach.config import RunConfig, load_config, save_config
from attncoach.errors import AttncoachError


def test_defaults_make_a_valid_run():
    cfg = load_config(None, [])
    assert isinstance(cfg, RunConfig)
    assert cfg.model.backbone == "scratch" and cfg.data.builtin is None and cfg.data.path is None


def test_overrides_are_parsed_as_yaml():
    cfg = load_config(
        None,
        [
            "train.lr=3e-4",
            "model.layers=4",
            "data.builtin=null",
            "train.betas=[0.9, 0.99]",
            "log.tensorboard=false",
            "output_dir=runs/x",
            "train.epochs=2",
        ],
    )
    assert cfg.train.lr == pytest.approx(3e-4) and isinstance(cfg.train.lr, float)
    assert cfg.model.layers == 4
    assert cfg.data.builtin is None
    assert cfg.train.betas == [0.9, 0.99]
    assert cfg.log.tensorboard is False
    assert cfg.output_dir == "runs/x"
    assert cfg.train.epochs == 2.0 and isinstance(cfg.train.epochs, float)


def test_yaml_file_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  dim: 64\n  heads: 2\ntrain:\n  lr: 0.002\n")
    cfg = load_config(path, ["train.lr=0.01"])
    assert cfg.model.dim == 64 and cfg.model.heads == 2
    assert cfg.train.lr == 0.01
    assert cfg.model.layers == 2  # left out of the file: default


@pytest.mark.parametrize(
    "override, words",
    [
        ("model.nope=1", "model.nope"),
        ("nosection.x=1", "nosection"),
        ("model.layers=four", "model.layers"),
        ("model.layers=2.5", "model.layers"),
        ("train.lr=fast", "train.lr"),
        ("log.tensorboard=3", "log.tensorboard"),
        ("data.path=[1, 2]", "data.path"),
        ("train.betas=0.9", "train.betas"),
        ("model.layers", "section.key=value"),
        ("model.pooling=attention", "model.pooling"),
        ("model.dim=130", "model.dim"),
        ("train.lr=-1", "train.lr"),
        ("data.val_fraction=0.95", "data.val_fraction"),
        ("data.test_fraction=0", "data.test_fraction"),
        ("model.backbone=' '", "model.backbone"),
        ("train.freeze_layers=-1", "train.freeze_layers' must be 0 or more"),
        ("train.freeze_layers=2", "train.freeze_layers' needs a pretrained model.backbone"),
        ("train.freeze_after=0.5", "train.freeze_after' needs train.freeze_layers"),
        ("train.freeze_after=1", "train.freeze_after' must be in [0, 1)"),
        ("train.freeze_after=.nan", "train.freeze_after"),
    ],
)
def test_bad_overrides_name_the_key(override, words):
    with pytest.raises(AttncoachError) as err:
        load_config(None, [override])
    assert words in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_key_in_file_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(AttncoachError, match="train.learning_rate"):
        load_config(path)


def test_section_of_wrong_type_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train: 3\n")
    with pytest.raises(AttncoachError, match="train must be a mapping"):
        load_config(path)


def test_malformed_and_missing_files(tmp_path):
    with pytest.raises(AttncoachError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: [1, 2\n")
    with pytest.raises(AttncoachError, match="not valid YAML"):
        load_config(bad)


def test_builtin_and_path_together_are_refused():
    with pytest.raises(AttncoachError, match="only one"):
        load_config(None, ["data.builtin=tweets-sentiment", "data.path=x.csv"])


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(None, ["model.layers=3", "train.max_steps=7", "data.max_length=40"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["model"]["layers"] == 3


def test_epochs_default_per_task_and_a_set_value_is_kept():
    assert load_config(None).train.epochs == 4.0
    assert load_config(None, ["task=next_item"]).train.epochs == 40.0
    assert load_config(None, ["task=next_item", "train.epochs=3"]).train.epochs == 3.0


@pytest.mark.parametrize(
    "override",
    [
        "train.lr=.inf",
        "train.weight_decay=.inf",
        "train.grad_clip=.inf",
        "train.lr=-.inf",
        "train.lr=1e999",
        "elastic.temperature=.inf",
        "train.betas=[.inf, 0.9]",
        "data.val_fraction=.nan",
        f"train.lr={10**400}",
        "coach.policies=[{plateau: {factor: .nan}}]",
    ],
)
def test_non_finite_numbers_are_refused_naming_the_key(override):
    from attncoach.train.settings import load_run_config

    key = override.split("=")[0] if "policies" not in override else "parameter 'factor'"
    with pytest.raises(AttncoachError) as err:
        load_run_config(None, [override])
    message = str(err.value)
    assert key in message and "finite number" in message and "\n" not in message and len(message) < 200


def test_non_finite_numbers_in_a_file_are_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  weight_decay: .inf\n")
    with pytest.raises(AttncoachError, match="config key 'train.weight_decay' must be a finite number, got inf"):
        load_config(path)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lrr=1", "unknown config key 'train.lrr' (did you mean 'train.lr'?)"),
        ("trian.lr=1", "unknown config key 'trian' (did you mean 'train'?)"),
        ("model.layer=2", "unknown config key 'model.layer' (did you mean 'model.layers'?)"),
        ("epochs=2", "unknown config key 'epochs' (did you mean 'train.epochs'?)"),
        ("train.target.valeu=0.5", "unknown config key 'train.target.valeu' (did you mean 'train.target.value'?)"),
        ("model.zzz=1", "unknown config key 'model.zzz' (known: backbone, dim, layers"),
        ("model.layers.x=1", "config key 'model.layers' is not a section: set it as model.layers=value"),
    ],
)
def test_unknown_override_keys_suggest_the_closest_key(override, message):
    with pytest.raises(AttncoachError) as err:
        load_config(None, [override])
    assert str(err.value).startswith(message)


def test_unknown_keys_in_a_file_suggest_the_closest_key_too(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lrr: 0.1\n")
    with pytest.raises(AttncoachError, match=r"unknown config key 'train.lrr' \(did you mean 'train.lr'\?\)"):
        load_config(path)
