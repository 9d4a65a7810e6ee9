"""Encoded splits, length-bucketed batch order, and padding into tensors.

Example:
    >>> sampler = LengthBucketBatchSampler(split.lengths, batch_size=32, seed=0)
    >>> for indices in sampler.batches(epoch=0):
    ...     batch = split.batch(indices, pad_id=0)  # input_ids, attention_mask, labels
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch


@dataclass
class EncodedSplit:
    """One split as token ids, class ids and the original texts (index i is one example).

    Attributes:
        ids: token ids per example, special tokens included, already truncated.
        labels: class ids, shape (N,), int64.
        texts: the raw texts.
        lines: the source line of each example (0 when unknown).
        groups: the group of each example (``data.group_column``), or empty when the data has none.
    """

    ids: list[list[int]]
    labels: np.ndarray
    texts: list[str]
    lines: list[int] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if not self.lines:
            self.lines = [0] * len(self.ids)
        if not len(self.ids) == len(self.labels) == len(self.texts) == len(self.lines):
            raise ValueError("ids, labels, texts and lines must have one entry per example")
        if self.groups and len(self.groups) != len(self.ids):
            raise ValueError("groups must be empty or have one entry per example")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        """Token count per example, shape (N,)."""
        return np.fromiter((len(ids) for ids in self.ids), dtype=np.int64, count=len(self.ids))

    def subset(self, indices: Sequence[int] | np.ndarray) -> EncodedSplit:
        """The examples at ``indices``, in that order (e.g. the ones data pruning keeps)."""
        keep = np.asarray(indices, dtype=np.int64)
        return EncodedSplit(
            [self.ids[i] for i in keep],
            self.labels[keep],
            [self.texts[i] for i in keep],
            [self.lines[i] for i in keep],
            [self.groups[i] for i in keep] if self.groups else [],
        )

    def batch(self, indices: Sequence[int], pad_id: int = 0) -> dict[str, torch.Tensor]:
        """The examples at ``indices`` as padded tensors (see :func:`collate`)."""
        return collate([self.ids[i] for i in indices], self.labels[np.asarray(indices, dtype=np.int64)], pad_id)


class LengthBucketBatchSampler:
    """Batches of similar length, in an order that is a pure function of (seed, epoch).

    With ``shuffle=True``, each epoch shuffles all indices, cuts them into windows of
    ``batch_size * bucket_size``, sorts each window by length, cuts it into batches and
    shuffles the order of all batches: batches hold similar lengths (little padding) yet
    differ from epoch to epoch. ``bucket_size=1`` gives plain random batches.

    With ``shuffle=False`` (evaluation), batches follow the examples sorted by length, so
    predictions come back out of order: map them back through the batch indices.

    Args:
        lengths: token count per example.
        batch_size: examples per batch.
        seed: the run's seed.
        bucket_size: batches per sorting window.
        shuffle: random order (training) or sorted by length (evaluation).
        drop_last: drop the one batch per epoch that is smaller than ``batch_size``.

    Example:
        >>> sampler = LengthBucketBatchSampler([5, 3, 9, 4], batch_size=2, seed=0, shuffle=False)
        >>> sampler.batches(epoch=0)
        [[1, 3], [0, 2]]
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_size: int,
        seed: int,
        bucket_size: int = 64,
        shuffle: bool = True,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1 or bucket_size < 1:
            raise ValueError("batch_size and bucket_size must be at least 1")
        self.lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
        self.batch_size = batch_size
        self.seed = seed
        self.bucket_size = bucket_size
        self.shuffle = shuffle
        self.drop_last = drop_last

    def __len__(self) -> int:
        """Batches per epoch (the same for every epoch)."""
        if self.drop_last:
            return len(self.lengths) // self.batch_size
        return -(-len(self.lengths) // self.batch_size)

    def batches(self, epoch: int) -> list[list[int]]:
        """The batches of ``epoch``, as lists of example indices; each index appears once."""
        if not self.shuffle:
            return _cut(np.argsort(self.lengths, kind="stable"), self.batch_size, self.drop_last)
        # Seeds must be non-negative for numpy's SeedSequence.
        rng = np.random.default_rng([self.seed % 2**32, epoch % 2**32])
        return bucket_batches(
            rng.permutation(len(self.lengths)), self.lengths, self.batch_size, self.bucket_size, rng, self.drop_last
        )


def bucket_batches(
    order: np.ndarray,
    lengths: np.ndarray,
    batch_size: int,
    bucket_size: int,
    rng: np.random.Generator,
    drop_last: bool = False,
) -> list[list[int]]:
    """Cut ``order`` (example indices, already shuffled) into batches of similar length.

    Windows of ``batch_size * bucket_size`` consecutive indices are sorted by length and cut
    into batches; the batches are then shuffled with ``rng``. Curriculum schedulers use this
    to batch whichever examples they chose.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> sorted(map(sorted, bucket_batches(np.array([0, 1, 2, 3]), np.array([5, 3, 9, 4]), 2, 2, rng)))
        [[0, 2], [1, 3]]
    """
    window = batch_size * bucket_size
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        batches += _cut(chunk[np.argsort(lengths[chunk], kind="stable")], batch_size, drop_last)
    return [batches[i] for i in rng.permutation(len(batches))]


def _cut(order: np.ndarray, batch_size: int, drop_last: bool) -> list[list[int]]:
    batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def inference_batches(lengths: Sequence[int], batch_size: int, pass_overhead: float | None = None) -> list[list[int]]:
    """Indices of the sequences, shortest first (ties in input order), cut into forward passes.

    Every pass holds at most ``batch_size`` sequences. Without ``pass_overhead`` the sorted sequences
    are cut every ``batch_size``. With it, they are cut where the passes cost least in all, a pass
    costing ``pass_overhead + rows * longest``: on a CPU a forward pass costs about its padded tokens
    plus a fixed cost that does not grow with them (dispatching its operations), here in tokens (see
    :func:`attncoach.models.passes.pass_overhead`). For MiniLM the fixed cost is about 20 tokens,
    and 32 requests of mixed lengths are answered fastest as several passes of similar lengths
    (MiniLM on banking77 queries, 15 tokens on average and up to 82: about 2x the texts per second of
    one padded pass, one torch thread); for a tiny model (the main job's int8 smallest sub-net) it
    is hundreds of tokens, and one padded pass is fastest. The cut is exact (dynamic programming over the sorted lengths, ``batch_size``
    candidates per sequence); on equal cost the later pass is the longer one.

    Example:
        >>> inference_batches([9, 3, 4, 30, 5], batch_size=4)
        [[1, 2, 4, 0], [3]]
        >>> inference_batches([9, 3, 4, 30, 5], batch_size=4, pass_overhead=8)
        [[1, 2, 4], [0], [3]]
        >>> inference_batches([9, 3, 4, 30, 5], batch_size=4, pass_overhead=100)
        [[1, 2, 4, 0], [3]]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    if pass_overhead is None:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if pass_overhead < 0:
        raise ValueError(f"pass_overhead must be at least 0, got {pass_overhead}")
    sorted_lengths = [lengths[i] for i in order]
    # cost[end]: the cheapest passes over the first `end` sorted sequences; first[end]: where the last begins.
    # Plain Python: for the 32 texts of a request batch it is ~5x faster than numpy's per-row calls.
    cost = [0.0] * (len(order) + 1)
    first = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        longest = sorted_lengths[end - 1]  # a pass over sorted[start:end] is padded to its last sequence
        best = low = max(0, end - batch_size)
        best_total = cost[low] + (end - low) * longest
        for start in range(low + 1, end):
            total = cost[start] + (end - start) * longest
            if total < best_total:  # strictly: the first minimum, the longest last pass
                best, best_total = start, total
        cost[end], first[end] = best_total + pass_overhead, best
    batches: list[list[int]] = []
    end = len(order)
    while end > 0:
        batches.append(order[first[end] : end])
        end = first[end]
    return batches[::-1]


def collate(
    ids_list: Sequence[Sequence[int]], labels: Optional[Sequence[int] | np.ndarray] = None, pad_id: int = 0
) -> dict[str, torch.Tensor]:
    """Pad token ids to the longest sequence of the batch.

    Args:
        ids_list: token ids per example.
        labels: class ids per example, or None.
        pad_id: the id used for padding.

    Returns:
        ``input_ids`` LongTensor (B, T), ``attention_mask`` BoolTensor (B, T) that is True
        on real tokens, and ``labels`` LongTensor (B,) when labels were given.
    """
    if len(ids_list) == 0:
        raise ValueError("collate needs at least one example")
    width = max(len(ids) for ids in ids_list)
    input_ids = np.full((len(ids_list), width), pad_id, dtype=np.int64)  # (B, T)
    mask = np.zeros((len(ids_list), width), dtype=bool)  # (B, T)
    for row, ids in enumerate(ids_list):
        input_ids[row, : len(ids)] = ids
        mask[row, : len(ids)] = True
    batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
    if labels is not None:
        batch["labels"] = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    return batch
