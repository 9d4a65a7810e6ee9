"""Which unlabelled examples to label next: the strategies of ``attncoach select`` and ``attncoach active``.

Every strategy sees the model's class probabilities on the pool (and, for the two that need them,
the pooled representations the classifier's last layer reads) and returns ``budget`` pool
positions, the first to label first, with the score that ranked each:

- ``random``: a seeded random draw (the baseline every curve is judged against); no score.
- ``entropy``: the highest entropy of the predicted distribution (nats) first.
- ``margin``: the smallest gap between the two most probable classes first; the score is that gap.
- ``badge``: BADGE (Ash et al. 2020): k-means++ seeding over gradient embeddings
  ``(p - onehot(argmax p)) ⊗ h``, so the batch is both uncertain (long gradients) and diverse; the
  score is the squared distance to the nearest embedding already chosen when the example was taken.
  The embeddings are never built: ``|g_i - g_j|² = |a_i|²|h_i|² + |a_j|²|h_j|² - 2 (a_i·a_j)(h_i·h_j)``
  with ``a = p - onehot``, so memory stays O(pool × (classes + dim)).
- ``coreset``: greedy k-centre (Sener & Savarese 2018) on the representations, the labelled
  examples as the first centres; the score is the distance to the nearest centre when taken.

Example:
    >>> probs = np.array([[0.9, 0.1], [0.5, 0.5], [0.6, 0.4]])
    >>> select(probs, 2, "margin", np.random.default_rng(0)).positions.tolist()
    [1, 2]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STRATEGIES = ("random", "entropy", "margin", "badge", "coreset")
NEED_EMBEDDINGS = ("badge", "coreset")


@dataclass
class Selection:
    """The chosen pool positions, in the order to label them, and the score of each (NaN for random)."""

    positions: np.ndarray
    scores: np.ndarray


def select(
    probs: np.ndarray,
    budget: int,
    strategy: str,
    rng: np.random.Generator,
    embeddings: np.ndarray | None = None,
    labelled: np.ndarray | None = None,
) -> Selection:
    """``budget`` positions of the pool whose probabilities are ``probs`` (rows), by ``strategy``.

    Args:
        probs: class probabilities, shape (pool, classes).
        budget: how many to choose, 1 .. pool.
        strategy: one of :data:`STRATEGIES`.
        rng: the seeded generator (random; BADGE's ties).
        embeddings: pooled representations, shape (pool, dim): badge and coreset.
        labelled: the labelled examples' representations, shape (labelled, dim): coreset's first centres.

    Raises:
        ValueError: an unknown strategy, a budget outside 1 .. pool, or missing embeddings.
    """
    n = len(probs)
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    if not 1 <= budget <= n:
        raise ValueError(f"the budget must be between 1 and the pool's {n} examples, got {budget}")
    if strategy in NEED_EMBEDDINGS and (embeddings is None or len(embeddings) != n):
        raise ValueError(f"strategy {strategy} needs the pool's representations")
    if strategy == "random":
        return Selection(rng.permutation(n)[:budget], np.full(budget, np.nan))
    if strategy == "entropy":
        return _top(entropy(probs), budget, largest=True)
    if strategy == "margin":
        return _top(margin(probs), budget, largest=False)
    if strategy == "badge":
        return badge(probs, embeddings, budget, rng)
    return coreset(embeddings, budget, labelled)


def entropy(probs: np.ndarray) -> np.ndarray:
    """The entropy of each row, in nats."""
    p = np.clip(probs, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1)


def margin(probs: np.ndarray) -> np.ndarray:
    """The most probable class's probability minus the second's, per row (1 for a single class)."""
    if probs.shape[1] < 2:
        return np.ones(len(probs))
    top2 = np.partition(probs, -2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def _top(scores: np.ndarray, budget: int, largest: bool) -> Selection:
    order = np.argsort(-scores if largest else scores, kind="stable")[:budget]
    return Selection(order, scores[order])


def badge(probs: np.ndarray, embeddings: np.ndarray, budget: int, rng: np.random.Generator) -> Selection:
    """BADGE's k-means++ seeding over the implicit gradient embeddings (see the module doc)."""
    a = probs.astype(np.float64).copy()
    a[np.arange(len(a)), probs.argmax(axis=1)] -= 1.0
    h = embeddings.astype(np.float64)
    norms = (a * a).sum(axis=1) * (h * h).sum(axis=1)  # |g_i|^2
    first = int(np.argmax(norms))  # the longest gradient first, as BADGE does
    chosen, scores = [first], [float(norms[first])]
    nearest = _squared_distances(a, h, norms, first)
    for _ in range(budget - 1):
        weights = np.clip(nearest, 0.0, None)
        weights[chosen] = 0.0
        total = weights.sum()
        if total <= 0:  # every remaining gradient equals a chosen one: fill with the longest left
            rest = np.setdiff1d(np.argsort(-norms, kind="stable"), chosen, assume_unique=True)
            pick = int(rest[0])
        else:
            pick = int(rng.choice(len(weights), p=weights / total))
        chosen.append(pick)
        scores.append(float(weights[pick]))
        nearest = np.minimum(nearest, _squared_distances(a, h, norms, pick))
    return Selection(np.array(chosen), np.array(scores))


def _squared_distances(a: np.ndarray, h: np.ndarray, norms: np.ndarray, centre: int) -> np.ndarray:
    return norms + norms[centre] - 2.0 * (a @ a[centre]) * (h @ h[centre])


def coreset(embeddings: np.ndarray, budget: int, labelled: np.ndarray | None = None) -> Selection:
    """Greedy k-centre: each pick is the pool example farthest from every centre so far."""
    x = embeddings.astype(np.float64)
    chosen: list[int] = []
    scores: list[float] = []
    if labelled is not None and len(labelled):
        nearest = np.full(len(x), np.inf)
        for start in range(0, len(labelled), 512):  # (pool x 512) distances at a time
            nearest = np.minimum(nearest, _distances(x, labelled[start : start + 512].astype(np.float64)).min(axis=1))
    else:  # no centre yet: the example nearest the pool's mean is the first
        first = int(np.argmin(((x - x.mean(axis=0)) ** 2).sum(axis=1)))
        chosen, scores = [first], [float("nan")]
        nearest = _distances(x, x[first : first + 1])[:, 0]
    while len(chosen) < budget:
        candidates = nearest.copy()
        candidates[chosen] = -np.inf
        pick = int(np.argmax(candidates))
        chosen.append(pick)
        scores.append(float(nearest[pick]))
        nearest = np.minimum(nearest, _distances(x, x[pick : pick + 1])[:, 0])
    return Selection(np.array(chosen), np.array(scores))


def _distances(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    squared = (x * x).sum(axis=1)[:, None] + (centres * centres).sum(axis=1)[None, :] - 2.0 * x @ centres.T
    return np.sqrt(np.clip(squared, 0.0, None))
