"""Calibration at the end of a run: the temperature fitted on val, calibration.json, metrics.json's section."""

from __future__ import annotations

import json

import pytest

from attncoach.models.saved import load_model
from attncoach.rundir import RunDir
from attncoach.train.calibrate import CalibrationCallback
from attncoach.train.recipe import Recipe
from attncoach.train.settings import load_run_config
from tinydata import tiny_overrides


def _finished(tiny_csv, tmp_path) -> tuple[Recipe, dict]:
    cfg = load_run_config(None, [*tiny_overrides(tiny_csv, tmp_path / "run", 20), "log.report=false"])
    recipe = Recipe(cfg, RunDir(cfg.output_dir), quiet=True)
    recipe.setup()
    try:
        recipe.train()
        return recipe, recipe.finish()
    finally:
        recipe.close()


def test_a_run_fits_a_temperature_on_val_and_keeps_it_with_the_model(tiny_csv, tmp_path):
    _, metrics = _finished(tiny_csv, tmp_path)
    model_dir = tmp_path / "run" / "model"
    record = json.loads((model_dir / "calibration.json").read_text())
    assert record["method"] == "temperature" and record["fitted_on"] == "val"
    assert 0.05 <= record["temperature"] <= 20
    section = metrics["calibration"]
    assert section == json.loads((tmp_path / "run" / "metrics.json").read_text())["calibration"]
    assert {k: section[k] for k in record} == record
    assert section["val_nll"][1] <= section["val_nll"][0]  # fitted on val: never worse there
    assert section["test_ece"][0] == pytest.approx(metrics["test"]["ece"], abs=1e-5)  # the raw model's test ECE
    assert load_model(model_dir).temperature == record["temperature"]


def test_train_calibrate_false_leaves_the_model_uncalibrated(tiny_csv, tmp_path):
    cfg = load_run_config(None, [*tiny_overrides(tiny_csv, tmp_path / "run", 20), "train.calibrate=false"])
    recipe = Recipe(cfg, RunDir(cfg.output_dir), quiet=True)
    recipe.setup()
    recipe.close()
    assert not any(isinstance(cb, CalibrationCallback) for cb in recipe.callbacks)  # nothing else writes the file
