"""The selection strategies' contract: budget distinct pool positions, in order, each with the score that chose it."""

from __future__ import annotations

import numpy as np
import pytest

from attncoach.active.strategies import STRATEGIES, badge, coreset, entropy, margin, select


def _pool(n: int = 60, classes: int = 4, dim: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(classes), size=n), rng.normal(size=(n, dim))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_returns_the_budget_in_distinct_positions_and_repeats_under_a_seed(strategy):
    probs, emb = _pool()
    one = select(probs, 12, strategy, np.random.default_rng(3), emb, emb[:5])
    two = select(probs, 12, strategy, np.random.default_rng(3), emb, emb[:5])
    assert len(one.positions) == 12 == len(set(one.positions.tolist())) == len(one.scores)
    assert one.positions.min() >= 0 and one.positions.max() < len(probs)
    assert one.positions.tolist() == two.positions.tolist()
    whole = select(probs, len(probs), strategy, np.random.default_rng(3), emb, emb[:5])
    assert sorted(whole.positions.tolist()) == list(range(len(probs)))  # the whole pool, each once


def test_entropy_takes_the_most_uncertain_and_margin_the_closest_call_first():
    probs = np.array([[0.98, 0.01, 0.01], [0.34, 0.33, 0.33], [0.5, 0.45, 0.05], [0.7, 0.2, 0.1]])
    rng = np.random.default_rng(0)
    assert select(probs, 2, "entropy", rng).positions.tolist() == [1, 2]
    assert select(probs, 2, "margin", rng).positions.tolist() == [1, 2]
    assert entropy(probs)[1] == pytest.approx(-(0.34 * np.log(0.34) + 2 * 0.33 * np.log(0.33)))
    assert margin(probs).tolist() == pytest.approx([0.97, 0.01, 0.05, 0.5])


def test_coreset_takes_the_point_farthest_from_every_centre():
    points = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0], [0.0, 3.0], [4.9, 0.2]])
    chosen = coreset(points, 2, labelled=np.array([[0.0, 0.0]]))
    assert chosen.positions.tolist() == [2, 3]  # 5 away, then 3 away (4 is 0.2 from the first pick)
    assert chosen.scores.tolist() == pytest.approx([5.0, 3.0])
    alone = coreset(points, 3)  # no labelled centre: the point nearest the mean starts
    assert alone.positions[0] == int(np.argmin(((points - points.mean(0)) ** 2).sum(1))) and np.isnan(alone.scores[0])


def test_badge_starts_from_the_longest_gradient_and_never_repeats_an_equal_one_while_others_remain():
    probs = np.array([[0.5, 0.5], [0.5, 0.5], [0.99, 0.01], [0.6, 0.4]])
    emb = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    chosen = badge(probs, emb, 3, np.random.default_rng(0))
    a = probs.copy()
    a[np.arange(4), probs.argmax(1)] -= 1
    lengths = (a**2).sum(1) * (emb**2).sum(1)
    assert chosen.positions[0] == int(np.argmax(lengths))
    assert not {0, 1} <= set(chosen.positions.tolist())  # example 1's gradient is example 0's


def test_bad_requests_are_value_errors():
    probs, emb = _pool(5)
    with pytest.raises(ValueError, match="unknown strategy"):
        select(probs, 2, "bald", np.random.default_rng(0))
    with pytest.raises(ValueError, match="between 1 and the pool's 5"):
        select(probs, 6, "entropy", np.random.default_rng(0))
    with pytest.raises(ValueError, match="needs the pool's representations"):
        select(probs, 2, "badge", np.random.default_rng(0))
