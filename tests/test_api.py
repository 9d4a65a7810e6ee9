"""The public Python API: attncoach.train(...) -> Run and attncoach.load(...) -> a predictor."""

from __future__ import annotations

import json

import pytest

import attncoach
from attncoach.errors import AttncoachError


def _tiny(tiny_csv, out, **extra):
    sections = {
        "data": {"path": str(tiny_csv), "vocab_size": 200, "min_frequency": 1},
        "model": {"dim": 16, "heads": 2, "layers": 1, "ffn_dim": 32},
        "train": {
            "max_steps": 120,
            "eval_every": 20,
            "lr": 5e-3,
            "threads": 1,
            "batch_size": 16,
            "early_stopping_patience": None,
        },
        "output_dir": str(out),
    }
    return {**sections, **extra}


def test_train_returns_the_run_and_load_predicts(tiny_csv, tmp_path):
    run = attncoach.train(**_tiny(tiny_csv, tmp_path / "run"))
    assert run.dir == tmp_path / "run" and run.metrics["primary"] == "macro_f1"
    assert run.metrics == json.loads((run.dir / "metrics.json").read_text())
    assert run.metrics["test"]["macro_f1"] > 0.6, "the tiny corpus is learnable"
    assert "coach" in run.metrics and run.config.coach.enabled, "the coach is on by default"
    assert run.config.train.lr == 5e-3 and run.config.train.layer_lr_decay == 1.0
    predictor = attncoach.load(run.dir)
    [result] = predictor.predict(["love great happy thanks"])
    assert result["label"] in ("negative", "neutral", "positive")
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


def test_train_still_works_after_the_train_package_is_imported(tiny_csv, tmp_path):
    import attncoach.train.recipe  # noqa: F401  (binds the package attribute)

    assert callable(attncoach.train)
    config = _tiny(tiny_csv, tmp_path / "yaml-run")
    path = tmp_path / "run.yaml"
    import yaml

    path.write_text(yaml.safe_dump({k: v for k, v in config.items() if k != "train"}))
    run = attncoach.train(path, train=config["train"])  # a YAML file, a section overridden
    assert run.config.train.max_steps == 120 and run.config.model.dim == 16


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"trian": {"lr": 1}}, "unknown config key 'trian'"),
        ({"train": {"lr": "fast"}}, "train.lr"),
        ({"task": "ranking"}, "config key 'task' must be one of"),
        ({"train": {"lr": float("inf")}}, "config key 'train.lr' must be a finite number, got inf"),
        ({"train": {"weight_decay": float("nan")}}, "config key 'train.weight_decay' must be a finite number"),
        ({"train": {"lrr": 1}}, r"unknown config key 'train.lrr' \(did you mean 'train.lr'\?\)"),
    ],
)
def test_bad_configuration_is_one_clear_error_and_writes_nothing(tmp_path, kwargs, words):
    with pytest.raises(AttncoachError, match=words):
        attncoach.train(output_dir=str(tmp_path / "never"), **kwargs)
    assert not (tmp_path / "never").exists()


def test_load_refuses_what_is_not_a_model(tmp_path):
    with pytest.raises(AttncoachError, match="not found"):
        attncoach.load(tmp_path / "missing")


def test_a_pretrained_backbone_gets_fine_tuning_defaults_unless_set():
    from attncoach.config import load_config

    tuned = load_config(None, ["model.backbone=minilm"]).train
    assert (tuned.lr, tuned.head_lr, tuned.layer_lr_decay) == (1e-4, 1e-3, 0.9)
    mine = load_config(None, ["model.backbone=minilm", "train.lr=3e-5"]).train
    assert (mine.lr, mine.head_lr) == (3e-5, 1e-3), "a key the user set is kept"
    scratch = load_config(None, []).train
    assert (scratch.lr, scratch.head_lr, scratch.layer_lr_decay) == (1e-3, None, 1.0)


def test_a_run_config_object_with_an_infinite_value_is_refused(tmp_path):
    from attncoach.config import RunConfig

    cfg = RunConfig(output_dir=str(tmp_path / "never"))
    cfg.train.lr = float("inf")
    with pytest.raises(AttncoachError, match="config key 'train.lr' must be a finite number"):
        attncoach.train(cfg)
    assert not (tmp_path / "never").exists()


def test_load_takes_a_run_directory_like_the_cli_and_predicts_one_string(tiny_csv, tmp_path, monkeypatch):
    run = attncoach.train(**_tiny(tiny_csv, tmp_path / "run", train={"max_steps": 20, "threads": 1}))
    monkeypatch.chdir(tmp_path)
    for where in ("run", tmp_path / "run", str(tmp_path / "run" / "model")):
        model = attncoach.load(where)
        [one] = model.predict("love great happy thanks")  # one text, not one per character
        assert one == model.predict(["love great happy thanks"])[0]
    with pytest.raises(AttncoachError, match="texts must be a string or a list of strings, not None"):
        model.predict(None)
    with pytest.raises(AttncoachError, match=r"texts\[0\] must be a string, not int 3"):
        model.predict_proba([3])
    with pytest.raises(AttncoachError, match="load needs the path of a run or model directory, not NoneType"):
        attncoach.load(None)
    assert run.dir == tmp_path / "run"
