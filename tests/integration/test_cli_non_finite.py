"""Non-finite numbers on the command line: refused in the config, never printed as NaN by predict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from attncoach.cli import main
from tinydata import tiny_overrides


def test_an_infinite_setting_is_refused_before_anything_is_written(capsys, tiny_csv, tmp_path):
    for setting in ("train.lr=.inf", "train.weight_decay=.inf"):
        assert main(["train", "--quiet", *tiny_overrides(tiny_csv, tmp_path / "out"), setting]) == 2
        assert "must be a finite number, got inf" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.fixture
def nan_run(tiny_csv, tmp_path) -> Path:
    """A finished tiny run whose saved weights were then all set to NaN."""
    out = tmp_path / "run"
    assert main(["train", "--quiet", *tiny_overrides(tiny_csv, out, 10)]) == 0
    weights = out / "model" / "model.safetensors"
    save_file({k: torch.full_like(v, float("nan")) for k, v in load_file(weights).items()}, str(weights))
    return out


def test_predict_with_nan_weights_is_one_error_and_no_nan_json(capsys, nan_run):
    capsys.readouterr()
    assert main(["predict", str(nan_run), "love great happy"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "NaN" not in captured.out
    assert "probabilities are not finite" in captured.err.splitlines()[-1]


def test_eval_json_of_a_nan_model_is_valid_json(capsys, nan_run):
    capsys.readouterr()
    assert main(["eval", str(nan_run), "--json"]) == 0
    printed = capsys.readouterr().out
    assert "NaN" not in printed
    assert json.loads(printed)["loss"] is None  # a diverged model's loss, as JSON can hold it
