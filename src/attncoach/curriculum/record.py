"""The per-example learning record: how each training example fared while the model learned it.

Every time an example is trained on, the recipe tells the record the loss, the predicted
class and the probability of the example's own label, as the model saw it in that forward
pass (before the update). From these it keeps, per example, the times seen and answered
right, the current correct streak, forgetting events (right at one presentation, wrong at
the next; Toneva et al. 2019) and the mean loss. The record is checkpointed with the run
and written as ``examples.jsonl`` (one JSON object per training example) when it ends.

``attncoach examples RUN`` reads that file and ranks examples:

- **hardest**: the highest mean loss;
- **suspect** (possibly mislabelled): the highest suspicion score, by default the mean loss
  (see :mod:`attncoach.curriculum.mislabel` for the scores: area under the margin, ...);
- **unforgettable**: answered right at every presentation since the first that was right,
  never forgotten, longest streak first.

Example:
    >>> import numpy as np
    >>> record = LearningRecord(3)
    >>> record.update(np.array([0, 1]), np.array([0.1, 2.0]), np.array([1, 0]), np.array([0.9, 0.1]),
    ...               np.array([1, 1]))
    >>> record.seen.tolist(), record.correct.tolist()
    ([1, 1, 0], [1, 0, 0])
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from attncoach.atomicfile import atomic_write_text
from attncoach.curriculum.mislabel import DEFAULT_SCORE, RecordColumns, suspect_order, suspicion
from attncoach.errors import AttncoachError

_INT_FIELDS = ("seen", "correct", "streak", "forgetting", "last_pred", "first_learned", "margin_seen")
_FLOAT_FIELDS = ("loss_sum", "last_loss", "p_label", "p_label_sum", "margin_sum")
_ADDED_FIELDS = ("margin_seen", "p_label_sum", "margin_sum")  # absent from checkpoints written before them


class LearningRecord:
    """Per-example counters over one training split.

    Args:
        size: number of training examples.

    Attributes:
        seen: presentations (forward passes in training).
        correct: presentations answered right.
        streak: consecutive right answers up to the last presentation.
        forgetting: right at one presentation, wrong at the next.
        last_pred: class predicted at the last presentation (-1 before the first).
        first_learned: presentation number (1-based) of the first right answer, 0 = never.
        loss_sum, last_loss: cross-entropy summed over presentations, and the last one.
        p_label: probability of the example's own label at the last presentation.
        p_label_sum: that probability summed over presentations (its mean: ``mean_p_label``).
        margin_sum, margin_seen: the margin (the own label's logit minus the largest other logit)
            summed over the presentations that reported one (tasks with class labels), and their
            count; their ratio is the area under the margin (``aum``, Pleiss et al. 2020).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        for name in _INT_FIELDS:
            setattr(self, name, np.zeros(size, dtype=np.int64))
        for name in _FLOAT_FIELDS:
            setattr(self, name, np.zeros(size, dtype=np.float64))
        self.last_pred[:] = -1
        self.last_loss[:] = np.nan

    def update(
        self,
        indices: np.ndarray,
        losses: np.ndarray,
        predicted: np.ndarray,
        p_label: np.ndarray,
        labels: np.ndarray,
        margins: np.ndarray | None = None,
    ) -> None:
        """Record one trained batch (an index repeated within the batch counts each time); ``margins``:
        each example's margin, when the task reports one."""
        indices = np.asarray(indices, dtype=np.int64)
        if len(np.unique(indices)) < len(indices):  # rare: apply repeats one presentation at a time
            for k in range(len(indices)):
                one = slice(k, k + 1)
                self.update(
                    indices[one],
                    losses[one],
                    predicted[one],
                    p_label[one],
                    labels[one],
                    None if margins is None else margins[one],
                )
            return
        i = indices
        right = np.asarray(predicted) == np.asarray(labels)
        was_right = (self.seen[i] > 0) & (self.last_pred[i] == np.asarray(labels))
        self.seen[i] += 1
        self.correct[i] += right
        self.streak[i] = np.where(right, self.streak[i] + 1, 0)
        self.first_learned[i] = np.where(right & (self.first_learned[i] == 0), self.seen[i], self.first_learned[i])
        self.forgetting[i] += was_right & ~right
        self.last_pred[i] = predicted
        self.loss_sum[i] += losses
        self.last_loss[i] = losses
        self.p_label[i] = p_label
        self.p_label_sum[i] += p_label
        if margins is not None:
            self.margin_sum[i] += margins
            self.margin_seen[i] += 1

    @property
    def mean_loss(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.seen > 0, self.loss_sum / np.maximum(self.seen, 1), np.nan)

    @property
    def mean_p_label(self) -> np.ndarray:
        """The probability of the own label, averaged over presentations (NaN before the first)."""
        return np.where(self.seen > 0, self.p_label_sum / np.maximum(self.seen, 1), np.nan)

    @property
    def aum(self) -> np.ndarray:
        """Area under the margin: the mean margin over presentations (NaN where none was reported)."""
        return np.where(self.margin_seen > 0, self.margin_sum / np.maximum(self.margin_seen, 1), np.nan)

    def totals(self) -> dict[str, Any]:
        """The record in four numbers (``metrics.json``): never seen, mean times seen, forgotten, never learned."""
        seen = self.seen
        return {
            "never_seen": int((seen == 0).sum()),
            "mean_times_seen": round(float(seen.mean()), 3),
            "forgotten_at_least_once": int((self.forgetting > 0).sum()),
            "never_learned": int(((seen > 0) & (self.first_learned == 0)).sum()),
        }

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready state (lists of numbers; NaN written as null)."""
        out: dict[str, Any] = {"size": self.size}
        for name in _INT_FIELDS:
            out[name] = getattr(self, name).tolist()
        for name in _FLOAT_FIELDS:
            out[name] = [None if np.isnan(v) else v for v in getattr(self, name).tolist()]
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("size") != self.size:
            raise ValueError(f"learning record of {state.get('size')} examples, this run has {self.size}")
        for name in _ADDED_FIELDS:  # an older checkpoint: these count from the resumed step on
            state.setdefault(name, [0] * self.size)
        for name in _INT_FIELDS:
            setattr(self, name, np.asarray(state[name], dtype=np.int64))
        for name in _FLOAT_FIELDS:
            setattr(self, name, np.array([np.nan if v is None else v for v in state[name]], dtype=np.float64))

    def rows(
        self,
        texts: Sequence[str],
        labels: np.ndarray,
        label_names: Sequence[str],
        lines: Sequence[int],
        extra: dict[str, np.ndarray] | None = None,
    ) -> Iterable[dict[str, Any]]:
        """One dict per example, as written to ``examples.jsonl``."""
        mean, mean_p, aum = self.mean_loss, self.mean_p_label, self.aum
        extra = extra or {}
        for i in range(self.size):
            row: dict[str, Any] = {
                "index": i,
                "line": int(lines[i]),
                "label": label_names[int(labels[i])],
                "text": texts[i],
                "seen": int(self.seen[i]),
                "correct": int(self.correct[i]),
                "streak": int(self.streak[i]),
                "forgetting": int(self.forgetting[i]),
                "learned": bool(self.first_learned[i] > 0),
                "first_learned": int(self.first_learned[i]),
                "predicted": label_names[int(self.last_pred[i])] if self.last_pred[i] >= 0 else None,
                "p_label": _num(self.p_label[i]) if self.seen[i] else None,
                "last_loss": _num(self.last_loss[i]),
                "mean_loss": _num(mean[i]),
                "mean_p_label": _num(mean_p[i]),
                "aum": _num(aum[i]),
            }
            for name, values in extra.items():
                row[name] = _num(values[i]) if np.issubdtype(values.dtype, np.floating) else int(values[i])
            yield row

    def write_jsonl(
        self,
        path: Path,
        texts: Sequence[str],
        labels: np.ndarray,
        label_names: Sequence[str],
        lines: Sequence[int],
        extra: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Write ``examples.jsonl`` atomically."""
        text = "".join(
            json.dumps(row, ensure_ascii=False) + "\n" for row in self.rows(texts, labels, label_names, lines, extra)
        )
        atomic_write_text(path, text)


def _num(value: float) -> float | None:
    return None if value is None or np.isnan(value) else round(float(value), 6)


# ------------------------------------------------------------------ reading examples.jsonl
RANKINGS = ("hardest", "suspect", "unforgettable")


def read_examples_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a run's ``examples.jsonl``; a missing or damaged file is an :class:`AttncoachError`."""
    if not path.is_file():
        raise AttncoachError(f"{path} not found: the run has not finished yet, or predates the learning record")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise AttncoachError(f"{path}: line {number} is not valid JSON") from None
            if not isinstance(row, dict) or not {"seen", "correct", "forgetting", "text", "label"} <= row.keys():
                raise AttncoachError(f"{path}: line {number} is not a learning-record row")
            rows.append(row)
    return rows


def rank(rows: list[dict[str, Any]], how: str, n: int, by: str | None = None) -> list[dict[str, Any]]:
    """The top ``n`` rows by one of ``RANKINGS`` (see the module docstring); ``by``: the suspicion score
    of ``suspect`` (each chosen row gets its value as ``suspicion``), None for :func:`default_score`."""
    if how == "hardest":
        chosen = [r for r in rows if r["seen"] > 0 and r.get("mean_loss") is not None]
        chosen.sort(key=lambda r: (-r["mean_loss"], r["index"]))
    elif how == "suspect":
        columns, by = RecordColumns.of_rows(rows), by or default_score(rows)
        scores = suspicion(columns, by)
        chosen = [dict(rows[i], suspicion=round(float(scores[i]), 6)) for i in suspect_order(columns, by)[:n]]
    elif how == "unforgettable":
        chosen = [
            r
            for r in rows
            if r.get("learned")
            and r["forgetting"] == 0
            and r["seen"] >= 2
            and r["streak"] == r["seen"] - r["first_learned"] + 1
        ]
        chosen.sort(key=lambda r: (-r["streak"], r.get("mean_loss") or 0.0, r["index"]))
    else:
        raise ValueError(f"unknown ranking {how!r}")
    return chosen[:n]


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts over the whole record: what ``attncoach examples RUN`` prints without a ranking."""
    seen = np.array([r["seen"] for r in rows]) if rows else np.zeros(0)
    out: dict[str, Any] = {
        "examples": len(rows),
        "never_seen": int((seen == 0).sum()),
        "mean_times_seen": round(float(seen.mean()), 3) if len(seen) else 0.0,
        "learned": sum(1 for r in rows if r.get("learned")),
        "forgotten_at_least_once": sum(1 for r in rows if r["forgetting"] > 0),
        "never_learned": sum(1 for r in rows if r["seen"] > 0 and not r.get("learned")),
        "suspect": _negative_margins(rows),
        "unforgettable": len(rank(rows, "unforgettable", len(rows))),
    }
    boxes = [r["box"] for r in rows if r.get("box") is not None]
    if boxes:
        out["boxes"] = {str(b): boxes.count(b) for b in sorted(set(boxes))}
    return out


def default_score(rows: list[dict[str, Any]]) -> str:
    """The default suspicion score (:data:`~attncoach.curriculum.mislabel.DEFAULT_SCORE`)."""
    return DEFAULT_SCORE


def _negative_margins(rows: list[dict[str, Any]]) -> int:
    """Examples whose area under the margin is negative (the model preferred another class on average);
    for a record without margins, the ones never answered right in two or more presentations."""
    if any(r.get("aum") is not None for r in rows):
        return sum(1 for r in rows if r.get("aum") is not None and r["aum"] < 0)
    return sum(1 for r in rows if r["seen"] >= 2 and r["correct"] == 0)
