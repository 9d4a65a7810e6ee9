"""Mislabel detection from one run's learning record, and how well it finds injected flips.

Every score is higher for a more suspect example; each reads the record of training
(``examples.jsonl``, or the :class:`~attncoach.curriculum.record.LearningRecord` in memory):

- ``aum``: minus the area under the margin (Pleiss et al. 2020): the margin of an example at one
  presentation is its own label's logit minus the largest other logit, and the AUM is its mean
  over the presentations of the whole run. A mislabelled example keeps a negative margin until the
  network memorises it, a clean hard one climbs above 0 early: low AUM = suspect.
- ``loss``: the mean cross-entropy of the example's own label over its presentations (the
  default: it measured best, by a hair, on the tweets with 20 % uniform noise; README).
- ``p_label``: one minus the mean probability of the example's own label over its presentations.
- ``forgetting``: forgetting events (right at one presentation, wrong at the next; Toneva et al.
  2019), an example never learned counting more than any; ties by ``p_label``.
- ``rank_mean``: the mean of the three above as percentile ranks (a rank fusion).

Unseen examples cannot be scored: they rank last. Against the flips of ``data.label_noise``
(``label_noise.json``), :func:`detection_scores` gives precision@k, recall@k, R-precision and the
average precision (AP: the mean, over the flipped examples, of the precision at the rank of each).

Example:
    >>> detection_scores([3, 1, 0, 2], {1, 2}, k=2)
    {'k': 2, 'flipped': 2, 'precision_at_k': 0.5, 'recall_at_k': 0.5, 'r_precision': 0.5, 'average_precision': 0.5}
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attncoach.errors import AttncoachError


@dataclass
class RecordColumns:
    """What the suspicion scores read of a learning record, one entry per training example."""

    seen: np.ndarray
    forgetting: np.ndarray
    learned: np.ndarray  # bool
    mean_p_label: np.ndarray  # NaN when unseen
    aum: np.ndarray  # NaN when no margin was recorded
    mean_loss: np.ndarray  # NaN when unseen

    @classmethod
    def of_record(cls, record: Any) -> RecordColumns:
        return cls(
            record.seen, record.forgetting, record.first_learned > 0, record.mean_p_label, record.aum, record.mean_loss
        )

    @classmethod
    def of_rows(cls, rows: Sequence[dict[str, Any]]) -> RecordColumns:
        """From ``examples.jsonl`` rows; a row from before ``mean_p_label`` falls back to its last ``p_label``."""

        def column(name: str, fallback: str | None = None) -> np.ndarray:
            values = [r.get(name, r.get(fallback) if fallback else None) for r in rows]
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

        return cls(
            np.array([r["seen"] for r in rows], dtype=np.int64),
            np.array([r["forgetting"] for r in rows], dtype=np.int64),
            np.array([bool(r.get("learned")) for r in rows]),
            column("mean_p_label", "p_label"),
            column("aum"),
            column("mean_loss"),
        )


def _aum(c: RecordColumns) -> np.ndarray:
    if np.isnan(c.aum[c.seen > 0]).all():
        raise AttncoachError(
            "this learning record has no margins (a run from before them, or a task without class labels): "
            "rank by p_label or forgetting"
        )
    return -c.aum


def _loss(c: RecordColumns) -> np.ndarray:
    return c.mean_loss


def _p_label(c: RecordColumns) -> np.ndarray:
    return 1.0 - c.mean_p_label


def _forgetting(c: RecordColumns) -> np.ndarray:
    never_learned = (c.seen > 0) & ~c.learned
    events = np.where(never_learned, c.seen + 1, c.forgetting).astype(np.float64)
    return events + 0.999 * np.nan_to_num(1.0 - c.mean_p_label, nan=0.0)  # the fraction only breaks ties


def _rank_mean(c: RecordColumns) -> np.ndarray:
    parts = [_aum(c), _p_label(c), _forgetting(c)]
    seen = c.seen > 0
    out = np.full(len(c.seen), np.nan)
    if seen.any():
        out[seen] = np.mean([_percentile_ranks(p[seen]) for p in parts], axis=0)
    return out


def _percentile_ranks(values: np.ndarray) -> np.ndarray:
    """Each value's rank in (0, 1], ties in order of position."""
    ranks = np.empty(len(values))
    ranks[np.argsort(values, kind="stable")] = np.arange(1, len(values) + 1)
    return ranks / len(values)


SUSPICION_SCORES: dict[str, Callable[[RecordColumns], np.ndarray]] = {
    "loss": _loss,
    "aum": _aum,
    "p_label": _p_label,
    "forgetting": _forgetting,
    "rank_mean": _rank_mean,
}
DEFAULT_SCORE = "loss"


def check_suspicion_score(by: str | None) -> None:
    """Refuse a name that is not one of :data:`SUSPICION_SCORES` (None: the default)."""
    if by is not None and by not in SUSPICION_SCORES:
        raise AttncoachError(f"unknown suspicion score {by!r}: choose one of {', '.join(SUSPICION_SCORES)}")


def suspicion(columns: RecordColumns, by: str = DEFAULT_SCORE) -> np.ndarray:
    """Each example's suspicion score ``by`` one of :data:`SUSPICION_SCORES`; NaN for an unseen example."""
    check_suspicion_score(by)
    scores = SUSPICION_SCORES[by](columns).astype(np.float64)
    scores[columns.seen == 0] = np.nan
    return scores


def suspect_order(columns: RecordColumns, by: str = DEFAULT_SCORE) -> np.ndarray:
    """Positions of the seen examples, most suspect first (ties: the lower position first)."""
    scores = suspicion(columns, by)
    seen = np.flatnonzero(~np.isnan(scores))
    return seen[np.argsort(-scores[seen], kind="stable")]


def detection_scores(ranking: Sequence[int], flipped: Collection[int], k: int) -> dict[str, Any]:
    """How well ``ranking`` (positions, most suspect first) finds the ``flipped`` positions.

    Flips missing from the ranking (unseen examples) count as not found.
    """
    flipped = set(int(i) for i in flipped)
    hits = np.array([int(i) in flipped for i in ranking], dtype=np.float64)
    total = len(flipped)
    if total == 0:
        return {"k": k, "flipped": 0}
    found = np.cumsum(hits)
    precision = found / np.arange(1, len(hits) + 1)
    top_k = found[min(k, len(hits)) - 1] if len(hits) and k else 0.0
    top_r = found[min(total, len(hits)) - 1] if len(hits) else 0.0
    return {
        "k": k,
        "flipped": total,
        "precision_at_k": round(float(top_k / k), 6) if k else 0.0,
        "recall_at_k": round(float(top_k / total), 6),
        "r_precision": round(float(top_r / total), 6),
        "average_precision": round(float((precision * hits).sum() / total), 6),
    }
