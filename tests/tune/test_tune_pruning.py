"""The pruning callback: what the recipe's evaluations report to Optuna, and when a run is stopped."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from attncoach.tune.study import PruningCallback, redact

optuna = pytest.importorskip("optuna")


def _recipe(step: int) -> SimpleNamespace:
    return SimpleNamespace(state=SimpleNamespace(step=step))


def test_a_trial_below_the_median_of_earlier_trials_is_stopped_with_a_reason():
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    good = study.ask()
    callback = PruningCallback(good, "macro_f1", warmup=0)
    for step, value in ((10, 0.6), (20, 0.7)):
        assert callback.after_eval(_recipe(step), {"macro_f1": value}, value) is None
    study.tell(good, 0.7)
    bad = study.ask()
    callback = PruningCallback(bad, "macro_f1", warmup=1)
    assert callback.after_eval(_recipe(10), {"macro_f1": 0.2}, 0.2) is None  # within the warm-up
    reason = callback.after_eval(_recipe(20), {"macro_f1": 0.3}, 0.3)
    assert reason.startswith("pruned by the tuner: val macro_f1 0.3000 at step 20")
    assert callback.pruned_at == 20 and bad.storage.get_trial(bad._trial_id).intermediate_values == {10: 0.2, 20: 0.3}


def test_a_non_finite_or_missing_metric_is_not_reported():
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    callback = PruningCallback(trial, "bleu", warmup=0)
    assert callback.after_eval(_recipe(5), {"bleu": math.nan}, math.nan) is None
    assert callback.after_eval(_recipe(6), {"loss": 1.0}, 0.0) is None
    assert callback.evaluations == 0


def test_a_storage_url_is_shown_without_its_password():
    assert redact("postgresql://tuner:s3cret@10.0.0.2:5432/studies") == "postgresql://tuner:***@10.0.0.2:5432/studies"
    assert redact("sqlite:///runs/tune/study.db") == "sqlite:///runs/tune/study.db"
