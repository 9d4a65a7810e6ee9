"""Classification metrics (scikit-learn underneath), as plain JSON-ready data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], labels: list[str], loss: float | None = None
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    Args:
        y_true: gold class ids.
        y_pred: predicted class ids.
        labels: class names; index = class id.
        loss: mean cross-entropy, reported when given.

    Returns:
        ``{"accuracy", "macro_f1", "per_class": {name: {...}}, "confusion": [[...]],
        "labels": [...], "n", "loss"?}``; ``confusion[i][j]`` counts gold ``i`` predicted ``j``.

    Example:
        >>> m = classification_metrics([0, 1, 1], [0, 1, 0], ["neg", "pos"])
        >>> round(m["accuracy"], 3), m["confusion"]
        (0.667, [[1, 0], [1, 1]])
    """
    ids = list(range(len(labels)))
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=ids, zero_division=0)
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(labels)
    }
    out: dict[str, Any] = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=ids, average="macro", zero_division=0)),
        "per_class": per_class,
        "confusion": confusion_matrix(y_true, y_pred, labels=ids).tolist(),
        "labels": list(labels),
        "n": int(len(y_true)),
    }
    if loss is not None:
        out["loss"] = float(loss)
    return out
