"""Ranking metrics for next-item prediction: the target's rank, hit rate, NDCG and MRR.

Scores cover the whole vocabulary, shape (B, V + 1), with column 0 for padding (never ranked).
A rank is 0-based and counts only the items scored strictly higher than the target: ties go
in the target's favour, and a model that scores everything alike gets rank 0.

Example:
    >>> scores = torch.tensor([[0.0, 0.9, 0.5, 0.1]])
    >>> ranks_full(scores, torch.tensor([2]), [np.array([], dtype=np.int64)])
    tensor([1])
    >>> ranking_metrics(torch.tensor([1]), k=10)["hr@10"]
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import numpy as np
import torch

IndexLike = Union[torch.Tensor, np.ndarray, Sequence[int]]


def ranks_full(scores: torch.Tensor, targets: IndexLike, exclude: Sequence[IndexLike]) -> torch.Tensor:
    """The 0-based rank of every target among all real items (1..V).

    The rank counts the items scored strictly higher than the target, leaving out index 0
    (padding) and the items of ``exclude[b]`` (typically the user's history); the target
    itself never counts, even when it is in ``exclude[b]``.

    Example:
        >>> scores = torch.tensor([[5.0, 0.9, 0.5, 0.7]])
        >>> ranks_full(scores, torch.tensor([2]), [np.array([1])])  # 0 is padding, 1 is excluded
        tensor([1])

    Args:
        scores: (B, V + 1) scores.
        targets: (B,) item indices in 1..V.
        exclude: B arrays of item indices not to rank (values outside 0..V are ignored).

    Returns:
        A (B,) int64 tensor on the device of ``scores``.

    Raises:
        ValueError: shapes that do not agree, or a target outside 1..V.
    """
    scores = _scores(scores)
    targets = _targets(targets, scores)
    if len(exclude) != scores.shape[0]:
        raise ValueError(f"exclude has {len(exclude)} rows for {scores.shape[0]} score rows")
    with torch.no_grad():
        higher = scores > scores.gather(1, targets[:, None])
        higher[:, 0] = False
        rows, cols = [], []
        for row, items in enumerate(exclude):
            items = torch.as_tensor(np.asarray(items, dtype=np.int64).reshape(-1))
            items = items[(items >= 0) & (items < scores.shape[1])]
            rows.append(torch.full_like(items, row))
            cols.append(items)
        if rows:
            higher[torch.cat(rows).to(scores.device), torch.cat(cols).to(scores.device)] = False
        return higher.sum(dim=1)


def ranks_sampled(scores: torch.Tensor, targets: IndexLike, negatives: IndexLike) -> torch.Tensor:
    """The 0-based rank of every target among itself and its ``n`` sampled negatives.

    The rank counts the negatives scored strictly higher than the target, so it lies in 0..n.

    Example:
        >>> scores = torch.tensor([[0.0, 0.9, 0.5, 0.7, 0.1]])
        >>> ranks_sampled(scores, torch.tensor([2]), torch.tensor([[3, 4]]))
        tensor([1])

    Args:
        scores: (B, V + 1) scores.
        targets: (B,) item indices in 1..V.
        negatives: (B, n) item indices in 1..V (see ``attncoach.data.interactions.sampled_negatives``).

    Returns:
        A (B,) int64 tensor on the device of ``scores``.

    Raises:
        ValueError: shapes that do not agree, or an index outside 1..V.
    """
    scores = _scores(scores)
    targets = _targets(targets, scores)
    negatives = torch.as_tensor(
        np.asarray(negatives, dtype=np.int64) if not isinstance(negatives, torch.Tensor) else negatives
    ).to(device=scores.device, dtype=torch.long)
    if negatives.dim() != 2 or negatives.shape[0] != scores.shape[0]:
        raise ValueError(f"negatives must have shape (B, n) with B = {scores.shape[0]}, not {tuple(negatives.shape)}")
    if negatives.numel() and (negatives.min() < 1 or negatives.max() >= scores.shape[1]):
        raise ValueError(f"negatives must be item indices in 1..{scores.shape[1] - 1}")
    with torch.no_grad():
        target_scores = scores.gather(1, targets[:, None])
        return (scores.gather(1, negatives) > target_scores).sum(dim=1)


def ranking_metrics(ranks: IndexLike, k: int = 10) -> dict[str, float]:
    """Hit rate, NDCG at ``k`` and MRR of 0-based ranks.

    ``hr@k`` is the share of ranks below ``k``; ``ndcg@k`` the mean of ``1 / log2(rank + 2)``
    over ranks below ``k`` (0 otherwise); ``mrr`` the mean of ``1 / (rank + 1)`` (not cut at k);
    ``n`` the number of ranks.

    Example:
        >>> ranking_metrics(torch.tensor([0, 1, 20]), k=10)
        {'hr@10': 0.6666666666666666, 'ndcg@10': 0.5436432511904858, 'mrr': 0.5158730158730159, 'n': 3}

    Raises:
        ValueError: no ranks, a negative rank or ``k`` below 1.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    values = ranks.detach().cpu().numpy() if isinstance(ranks, torch.Tensor) else np.asarray(ranks)
    values = values.reshape(-1).astype(np.float64)
    if values.size == 0:
        raise ValueError("ranking metrics need at least one rank")
    if values.min() < 0:
        raise ValueError("ranks must be 0 or more")
    hit = values < k
    return {
        f"hr@{k}": float(hit.mean()),
        f"ndcg@{k}": float(np.where(hit, 1.0 / np.log2(values + 2.0), 0.0).mean()),
        "mrr": float((1.0 / (values + 1.0)).mean()),
        "n": int(values.size),
    }


def _scores(scores: torch.Tensor) -> torch.Tensor:
    if not isinstance(scores, torch.Tensor) or scores.dim() != 2 or scores.shape[1] < 2:
        raise ValueError("scores must be a (B, V + 1) tensor with at least one real item")
    return scores.detach()


def _targets(targets: IndexLike, scores: torch.Tensor) -> torch.Tensor:
    if not isinstance(targets, torch.Tensor):
        targets = torch.as_tensor(np.asarray(targets, dtype=np.int64))
    targets = targets.to(device=scores.device, dtype=torch.long).reshape(-1)
    if targets.shape[0] != scores.shape[0]:
        raise ValueError(f"{targets.shape[0]} targets for {scores.shape[0]} score rows")
    if targets.numel() and (targets.min() < 1 or targets.max() >= scores.shape[1]):
        raise ValueError(f"targets must be item indices in 1..{scores.shape[1] - 1}")
    return targets
