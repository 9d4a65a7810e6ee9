"""Classification metrics (scikit-learn underneath), as plain JSON-ready data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], labels: list[str], loss: float | None = None
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    Macro-F1 is the mean F1 of the classes **present in the split** (gold support > 0): a
    class without a gold example cannot be recalled, and its F1 of 0 would only say that
    this split lacks it. ``macro_classes`` names the classes averaged over and
    ``absent_classes`` the others; ``per_class`` lists every label, each with ``present``.

    Args:
        y_true: gold class ids.
        y_pred: predicted class ids.
        labels: class names; index = class id.
        loss: mean cross-entropy, reported when given.

    Returns:
        ``{"accuracy", "macro_f1", "macro_classes", "absent_classes", "per_class": {name: {...}},
        "confusion": [[...]], "labels": [...], "n", "loss"?}``; ``confusion[i][j]`` counts gold
        ``i`` predicted ``j``.

    Example:
        >>> m = classification_metrics([0, 1, 1], [0, 1, 0], ["neg", "pos", "typo"])
        >>> round(m["accuracy"], 3), m["confusion"][:2]
        (0.667, [[1, 0, 0], [1, 1, 0]])
        >>> round(m["macro_f1"], 3), m["absent_classes"]  # the mean of neg's and pos's F1
        (0.667, ['typo'])
    """
    ids = list(range(len(labels)))
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=ids, zero_division=0)
    present = support > 0
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
            "present": bool(present[i]),
        }
        for i, name in enumerate(labels)
    }
    out: dict[str, Any] = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "macro_classes": [name for name, row in per_class.items() if row["present"]],
        "absent_classes": [name for name, row in per_class.items() if not row["present"]],
        "per_class": per_class,
        "confusion": confusion_matrix(y_true, y_pred, labels=ids).tolist(),
        "labels": list(labels),
        "n": int(len(y_true)),
    }
    if loss is not None:
        out["loss"] = float(loss)
    return out


def expected_calibration_error(probs: Any, gold: Sequence[int], bins: int = 15) -> float:
    """Expected calibration error of the top-class confidence, in ``bins`` equal-width bins over (0, 1].

    The weighted mean, over bins, of |accuracy - mean confidence| of the examples whose top
    probability falls in the bin (Guo et al. 2017 use 15 bins).

    Example:
        >>> round(expected_calibration_error(np.array([[0.9, 0.1], [0.6, 0.4]]), [0, 1]), 3)
        0.35
    """
    probs = np.asarray(probs, dtype=np.float64)
    gold = np.asarray(gold)
    if len(gold) == 0:
        return 0.0
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == gold).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)  # (lo, hi]
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(error)
