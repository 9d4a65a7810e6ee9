"""ranks_full, ranks_sampled and ranking_metrics on tiny hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attncoach.tasks.ranking import ranking_metrics, ranks_full, ranks_sampled

#                        pad   1    2    3    4    5
SCORES = torch.tensor([[9.0, 0.1, 0.8, 0.5, 0.9, 0.3], [9.0, 0.7, 0.7, 0.2, 0.6, 0.9]])


def test_ranks_full_ignores_padding_and_counts_strictly_higher():
    empty = [np.array([], dtype=np.int64)] * 2
    # row 0, target 3 (0.5): items 2 (0.8) and 4 (0.9) are higher -> 2; row 1, target 1 (0.7): item 5 -> 1 (2 ties)
    assert ranks_full(SCORES, torch.tensor([3, 1]), empty).tolist() == [2, 1]
    assert ranks_full(SCORES, torch.tensor([4, 5]), empty).tolist() == [0, 0]


def test_ranks_full_excludes_history_but_never_the_target():
    exclude = [np.array([4, 3]), np.array([5, 1, 0])]
    assert ranks_full(SCORES, torch.tensor([3, 1]), exclude).tolist() == [1, 0]
    assert ranks_full(SCORES, np.array([1, 3]), [np.array([2]), np.array([])]).tolist() == [3, 4]


def test_ranks_full_bad_shapes():
    with pytest.raises(ValueError, match="targets must be item indices"):
        ranks_full(SCORES, torch.tensor([0, 1]), [np.array([])] * 2)
    with pytest.raises(ValueError, match="exclude has 1 rows"):
        ranks_full(SCORES, torch.tensor([1, 1]), [np.array([])])


def test_ranks_sampled():
    negatives = torch.tensor([[1, 2, 5], [3, 4, 2]])
    # row 0, target 3 (0.5): 2 (0.8) higher, 1 and 5 lower -> 1; row 1, target 1 (0.7): 2 ties, 3 and 4 lower -> 0
    assert ranks_sampled(SCORES, torch.tensor([3, 1]), negatives).tolist() == [1, 0]
    assert ranks_sampled(SCORES, [1, 3], np.array([[2, 3, 4], [1, 2, 5]])).tolist() == [3, 3]
    with pytest.raises(ValueError, match="negatives must have shape"):
        ranks_sampled(SCORES, torch.tensor([3, 1]), torch.tensor([1, 2]))


def test_ranking_metrics_hand_computed():
    metrics = ranking_metrics(torch.tensor([0, 1, 9, 10]), k=10)
    assert set(metrics) == {"hr@10", "ndcg@10", "mrr", "n"}
    assert metrics["hr@10"] == pytest.approx(0.75)
    assert metrics["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(11)) / 4)
    assert metrics["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 10 + 1 / 11) / 4)
    assert metrics["n"] == 4
    assert ranking_metrics(np.array([0, 1, 9, 10]), k=1) == pytest.approx(
        {"hr@1": 0.25, "ndcg@1": 0.25, "mrr": metrics["mrr"], "n": 4}
    )


def test_ranking_metrics_bad_input():
    with pytest.raises(ValueError, match="at least one rank"):
        ranking_metrics(torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError, match="k must be at least 1"):
        ranking_metrics(torch.tensor([0]), k=0)
