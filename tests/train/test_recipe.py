"""The recipe's best-model tracking: an evaluation with a non-finite val loss is never the best."""

from __future__ import annotations

import json
import math

import pytest

from attncoach.errors import AttncoachError
from attncoach.rundir import RunDir
from attncoach.train.recipe import Recipe
from attncoach.train.settings import load_run_config
from tinydata import tiny_overrides


def _recipe(tiny_csv, tmp_path, *extra: str) -> Recipe:
    cfg = load_run_config(None, [*tiny_overrides(tiny_csv, tmp_path / "run", 40), *extra])
    recipe = Recipe(cfg, RunDir(cfg.output_dir), quiet=True)
    recipe.setup()
    return recipe


def _diverging_after(recipe: Recipe, step: int) -> None:
    """From ``step`` on, val reports a NaN loss with a perfect-looking metric (a NaN model's argmax)."""
    evaluate = recipe._evaluate

    def patched(split):
        metrics = evaluate(split)
        if recipe.state.step >= step:
            metrics.update(loss=math.nan, macro_f1=1.0, accuracy=1.0)
        return metrics

    recipe._evaluate = patched


def _strict_json(path):
    def refuse(name):
        raise ValueError(f"{name} in {path}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_a_nan_val_loss_is_never_the_best_model(tiny_csv, tmp_path):
    recipe = _recipe(tiny_csv, tmp_path, "train.target.metric=macro_f1", "train.target.value=0.99")
    _diverging_after(recipe, 20)
    recipe.train()
    del recipe._evaluate  # the kept model evaluates as it is
    recipe.finish()
    recipe.close()
    state = recipe.state
    assert state.best_step == 10, "the last evaluation with a finite val loss is the best"
    assert not state.stopped_early, "a NaN evaluation does not reach the target"
    metrics = _strict_json(tmp_path / "run" / "metrics.json")  # valid JSON: no NaN
    assert metrics["best_step"] == 10 and metrics["target"]["reached"] is False
    assert [h["val_loss"] is None for h in metrics["history"]] == [False, True, True, True]
    assert metrics["history"][-1]["val_macro_f1"] is None


def test_a_nan_val_loss_counts_towards_early_stopping(tiny_csv, tmp_path):
    recipe = _recipe(tiny_csv, tmp_path, "train.early_stopping_patience=2")
    _diverging_after(recipe, 20)
    recipe.train()
    recipe.close()
    assert recipe.state.stopped_early and recipe.state.step == 30 and recipe.state.best_step == 10


def test_a_run_that_never_had_a_finite_val_loss_keeps_no_model_and_says_so(tiny_csv, tmp_path):
    recipe = _recipe(tiny_csv, tmp_path)
    _diverging_after(recipe, 0)
    recipe.train()
    with pytest.raises(AttncoachError, match="training diverged: the val loss was NaN or infinite"):
        recipe.finish()
    recipe.close()
    assert not (tmp_path / "run" / "model" / "model.safetensors").exists()
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_the_coach_sees_no_metric_of_a_diverged_evaluation(tiny_csv, tmp_path):
    recipe = _recipe(tiny_csv, tmp_path, "coach.enabled=true", "coach.policies=[plateau, regularisation]")
    _diverging_after(recipe, 20)
    seen = []
    session_after_eval = recipe.coach.after_eval

    def spy(step, examples_seen, metric, best, val_loss, batch):
        seen.append((metric, val_loss))
        return session_after_eval(step, examples_seen, metric, best, val_loss, batch)

    recipe.coach.after_eval = spy
    recipe.train()
    recipe.close()
    assert seen[0][0] is not None and seen[0][1] is not None
    assert all(entry == (None, None) for entry in seen[1:])
    log = tmp_path / "run" / "coach.jsonl"
    decisions = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    assert not any(d["policy"] == "plateau" for d in decisions), "the NaN evaluations are not a plateau"


def test_a_supernet_with_a_nan_val_loss_keeps_training_and_its_best_model(tiny_csv, tmp_path):
    recipe = _recipe(tiny_csv, tmp_path, "elastic.enabled=true", "elastic.widths=[0.5,1.0]", "elastic.depths=[1.0]")
    _diverging_after(recipe, 20)
    recipe.train()  # the progress note of a NaN evaluation names the smallest sub-net's score too
    recipe.close()
    assert recipe.state.best_step == 10
    assert recipe.state.history[-1]["val_macro_f1_smallest"] is None
