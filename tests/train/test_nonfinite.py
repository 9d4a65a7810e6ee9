"""A step with a NaN or infinite loss never reaches the weights, with the coach or without it."""

from __future__ import annotations

import json
import math

import pytest
import torch

from attncoach.cli import main
from attncoach.errors import AttncoachError
from attncoach.rundir import RunDir
from attncoach.tasks import TASKS
from attncoach.train.recipe import Recipe
from attncoach.train.settings import load_run_config
from tinydata import tiny_overrides


def _recipe(tiny_csv, tmp_path, *extra: str) -> Recipe:
    cfg = load_run_config(None, [*tiny_overrides(tiny_csv, tmp_path / "run", 40), *extra])
    recipe = Recipe(cfg, RunDir(cfg.output_dir), quiet=True)
    recipe.setup()
    return recipe


def _poison(recipe: Recipe, bad_steps) -> None:
    """The training loss is NaN at the (0-based) steps in ``bad_steps``, as a broken batch would make it."""
    step = recipe.task.step

    def patched(model, batch):
        out = step(model, batch)
        if recipe.state.step in bad_steps:
            out.loss = out.loss * math.nan
        return out

    recipe.task.step = patched


def _finite(recipe: Recipe) -> bool:
    return all(torch.isfinite(p).all() for p in recipe.model.parameters())


@pytest.mark.parametrize("coach", ["false", "true"])
def test_a_nan_step_is_skipped_and_counted(tiny_csv, tmp_path, coach, caplog):
    recipe = _recipe(tiny_csv, tmp_path, f"coach.enabled={coach}", "coach.policies=[divergence_guard]")
    _poison(recipe, {5, 17})
    recipe.train()
    assert _finite(recipe), "no NaN reached the weights"
    metrics = recipe.finish()
    recipe.close()
    assert metrics["nonfinite_steps"] == 2 and metrics["steps"] == 40
    if coach == "false":  # (the coach's divergence guard also rolls back and lowers the LR)
        assert metrics["test"]["accuracy"] > 0.5, "the run went on learning"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["nonfinite_steps"] == 2
    assert "step 6: non-finite loss (NaN or inf); the update is skipped (1 so far)" in caplog.text


def test_a_skipped_step_leaves_the_weights_as_they_were(tiny_csv, tmp_path):
    recipe = _recipe(tiny_csv, tmp_path, "train.max_steps=6")
    _poison(recipe, {5})
    recipe.total_steps = 5
    recipe.train()
    before = {k: v.clone() for k, v in recipe.model.state_dict().items()}
    recipe.total_steps = 6
    recipe.train()
    recipe.close()
    assert recipe.state.step == 6 and recipe.state.nonfinite_steps == 1
    assert all(torch.equal(before[k], v) for k, v in recipe.model.state_dict().items())


def test_a_run_that_keeps_making_them_stops_in_one_line(tiny_csv, tmp_path):
    recipe = _recipe(tiny_csv, tmp_path, "train.max_nonfinite_steps=3")
    _poison(recipe, set(range(8, 40)))
    with pytest.raises(AttncoachError, match=r"training stopped at step 11: 3 updates in a row had a NaN"):
        recipe.train()
    recipe.close()
    assert _finite(recipe)


def test_the_cli_says_so_in_one_line_and_exits_2(tiny_csv, tmp_path, monkeypatch, capsys):
    task = TASKS["text_classification"]
    step = task.step

    def broken(self, model, batch):
        out = step(self, model, batch)
        out.loss = out.loss * math.inf
        return out

    monkeypatch.setattr(task, "step", broken)
    out = tmp_path / "run"
    assert main(["train", "--quiet", *tiny_overrides(tiny_csv, out, 20), "train.max_nonfinite_steps=4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: training stopped at step 4: 4 updates in a row") and "Traceback" not in "\n".join(
        err
    )
    assert not (out / "metrics.json").exists()
