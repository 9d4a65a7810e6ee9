"""The figures a run sends to its trackers at the end: the test confusion matrix, the sub-net front
and attention heatmaps per head for a few test examples.

They are drawn with matplotlib (the ``figures`` extra, ``pip install 'attncoach[figures]'``)
and handed to the loggers as RGB arrays, so a tracker backend needs no plotting library.
Without matplotlib the run logs no figures and says so once.

:func:`run_figures` is where an end-of-run figure is added; anything else can send one through the recipe's
``loggers.log_figure(tag, figure, step)``.

Example:
    >>> figure = confusion_figure([[5, 1], [2, 7]], ["neg", "pos"])  # doctest: +SKIP
    >>> to_rgb(figure).shape  # doctest: +SKIP
    (480, 480, 3)
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

import numpy as np

log = logging.getLogger("attncoach")

_INSTALL = "pip install 'attncoach[figures]'"


def run_figures(recipe: Any, metrics: dict[str, Any]) -> dict[str, Any]:
    """The end-of-run figures by tag: ``figures/confusion_test`` (a classification task) and
    ``figures/subnets`` (an elastic run: its full model and smallest sub-net on test)."""
    texts = getattr(recipe.data.splits.get("test"), "texts", None) if recipe is not None else None
    wanted = "confusion" in metrics.get("test", {}) or "elastic" in metrics or bool(texts)
    if not wanted:
        return {}
    if importlib.util.find_spec("matplotlib") is None:
        log.info("the trackers get no figures: matplotlib is not installed (%s)", _INSTALL)
        return {}
    figures = {}
    test = metrics.get("test", {})
    if "confusion" in test and "labels" in test:
        figures["figures/confusion_test"] = confusion_figure(test["confusion"], test["labels"])
    if "elastic" in metrics:
        primary = metrics.get("primary", "macro_f1")
        figures["figures/subnets"] = subnet_figure(subnet_points(metrics, primary), f"test {primary}")
    if texts:
        figures.update(attention_figures(recipe.run_dir.model, texts))
    return figures


def attention_figures(model_dir: Any, texts: list[str], count: int = 2) -> dict[str, Any]:
    """``figures/attention_<n>``: every layer's and head's attention of the saved model on the first
    ``count`` short texts (the report's choice of examples, :func:`attncoach.report.sections.short_texts`)."""
    from attncoach.errors import AttncoachError
    from attncoach.models.saved import load_model
    from attncoach.report.attention import attention_figure, pick
    from attncoach.report.sections import short_maps, short_texts

    try:
        predictor = load_model(model_dir)
    except AttncoachError as exc:  # the run's own model: only a damaged disk gets here
        log.warning("the trackers get no attention maps: %s", exc)
        return {}
    maps = short_maps(predictor, short_texts(texts, 20), count)
    return {
        f"figures/attention_{n}": attention_figure(tokens, pick(per_layer, None, None))
        for n, (tokens, per_layer) in enumerate(maps)
    }


def subnet_points(metrics: dict[str, Any], primary: str) -> list[dict[str, Any]]:
    """The sub-nets an elastic run evaluated on test (``metrics.json``): name, active parameters, quality.

    Example:
        >>> subnet_points({"test": {"macro_f1": 0.8}, "elastic": {"full_parameters": 900, "smallest": "w0.25 d0.50",
        ...     "smallest_parameters": 200, "test_smallest": {"macro_f1": 0.6}}}, "macro_f1")[1]
        {'name': 'w0.25 d0.50', 'parameters': 200, 'quality': 0.6}
    """
    elastic = metrics["elastic"]
    return [
        {"name": "full", "parameters": elastic["full_parameters"], "quality": metrics["test"][primary]},
        {
            "name": elastic["smallest"],
            "parameters": elastic["smallest_parameters"],
            "quality": elastic["test_smallest"][primary],
        },
    ]


def confusion_figure(confusion: list[list[int]], labels: list[str]) -> Any:
    """A heatmap of ``confusion[gold][predicted]`` with the counts written in the cells."""
    import matplotlib.figure

    counts = np.asarray(confusion)
    size = max(3.0, 0.6 * len(labels) + 2)
    figure = matplotlib.figure.Figure(figsize=(size, size), dpi=100)
    axes = figure.add_subplot()
    axes.imshow(counts, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    axes.set_title("confusion matrix (test)")
    high = counts.max() if counts.size else 0
    for (i, j), count in np.ndenumerate(counts):
        axes.text(j, i, str(count), ha="center", va="center", color="white" if count > high / 2 else "black")
    figure.tight_layout()
    return figure


def subnet_figure(points: list[dict[str, Any]], quality: str = "test quality") -> Any:
    """Quality against active parameters, one labelled point per sub-net, the front joined by a line."""
    import matplotlib.figure

    figure = matplotlib.figure.Figure(figsize=(5, 4), dpi=100)
    axes = figure.add_subplot()
    ordered = sorted(points, key=lambda p: p["parameters"])
    front, best = [], -np.inf
    for point in ordered:  # a point is on the front when no smaller sub-net scores as well
        if point["quality"] > best:
            front.append(point)
            best = point["quality"]
    axes.plot([p["parameters"] for p in front], [p["quality"] for p in front], "-", color="tab:blue")
    axes.scatter([p["parameters"] for p in ordered], [p["quality"] for p in ordered], color="tab:blue")
    for point in ordered:
        axes.annotate(point["name"], (point["parameters"], point["quality"]), textcoords="offset points", xytext=(4, 4))
    axes.set_xlabel("active parameters")
    axes.set_ylabel(quality)
    axes.set_title("sub-nets (test)")
    figure.tight_layout()
    return figure


def to_rgb(figure: Any) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 image of a matplotlib Figure (an array is returned as it is)."""
    if isinstance(figure, np.ndarray):
        return figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()
