"""The end-of-run figures the trackers get: drawn from metrics.json, skipped without matplotlib."""

from __future__ import annotations

import logging
import sys

import numpy as np

from attncoach.train.figures import run_figures, to_rgb

METRICS = {
    "primary": "macro_f1",
    "test": {"macro_f1": 0.8, "confusion": [[5, 1], [2, 7]], "labels": ["neg", "pos"]},
    "elastic": {
        "full_parameters": 900,
        "smallest": "w0.25 d0.50",
        "smallest_parameters": 200,
        "test_smallest": {"macro_f1": 0.6},
    },
}


def test_a_classification_run_gets_its_confusion_matrix_and_an_elastic_one_its_subnets():
    figures = run_figures(None, METRICS)
    assert list(figures) == ["figures/confusion_test", "figures/subnets"]
    for figure in figures.values():
        image = to_rgb(figure)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert image.min() < 100 < 250 < image.max()  # something is drawn on a light background
    assert run_figures(None, {"test": {"ndcg@10": 0.3}}) == {}  # next_item: no confusion matrix


def test_without_matplotlib_the_trackers_get_no_figures_and_are_told_why(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with caplog.at_level(logging.INFO, logger="attncoach"):
        assert run_figures(None, METRICS) == {}
    assert "pip install 'attncoach[figures]'" in caplog.text
