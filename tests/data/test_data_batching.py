"""EncodedSplit, LengthBucketBatchSampler, inference_batches and collate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attncoach.data.batching import (
    EncodedSplit,
    LengthBucketBatchSampler,
    collate,
    inference_batches,
)


@pytest.fixture
def lengths() -> np.ndarray:
    return np.random.default_rng(0).integers(3, 120, size=1003)


def flat(batches: list[list[int]]) -> list[int]:
    return [i for batch in batches for i in batch]


def test_every_index_once_per_epoch(lengths):
    sampler = LengthBucketBatchSampler(lengths, batch_size=16, seed=0, bucket_size=8)
    for epoch in range(3):
        batches = sampler.batches(epoch)
        assert sorted(flat(batches)) == list(range(len(lengths)))
        assert len(batches) == len(sampler) == 63
        assert sum(len(b) < 16 for b in batches) == 1


def test_order_is_a_function_of_seed_and_epoch(lengths):
    sampler = LengthBucketBatchSampler(lengths, batch_size=16, seed=5)
    same = LengthBucketBatchSampler(lengths.tolist(), batch_size=16, seed=5)
    assert sampler.batches(2) == same.batches(2) == sampler.batches(2)
    assert sampler.batches(2) != sampler.batches(3)
    assert sampler.batches(2) != LengthBucketBatchSampler(lengths, batch_size=16, seed=6).batches(2)


def test_batches_are_length_homogeneous(lengths):
    sampler = LengthBucketBatchSampler(lengths, batch_size=16, seed=0, bucket_size=64)
    bucketed = np.mean([np.ptp(lengths[b]) for b in sampler.batches(0)])
    plain = LengthBucketBatchSampler(lengths, batch_size=16, seed=0, bucket_size=1)
    random_spread = np.mean([np.ptp(lengths[b]) for b in plain.batches(0)])
    assert bucketed < 0.1 * random_spread


def test_drop_last_drops_the_short_batch(lengths):
    sampler = LengthBucketBatchSampler(lengths, batch_size=16, seed=0, bucket_size=4, drop_last=True)
    batches = sampler.batches(1)
    assert len(batches) == len(sampler) == 62
    assert all(len(b) == 16 for b in batches)
    assert len(set(flat(batches))) == 62 * 16


def test_unshuffled_batches_follow_length():
    sampler = LengthBucketBatchSampler([5, 3, 9, 4, 3], batch_size=2, seed=0, shuffle=False)
    assert sampler.batches(0) == sampler.batches(7) == [[1, 4], [3, 0], [2]]


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError):
        LengthBucketBatchSampler([1, 2], batch_size=0, seed=0)


def test_collate_pads_and_masks():
    batch = collate([[2, 7, 3], [2, 3], [2, 8, 9, 10, 3]], labels=[1, 0, 2], pad_id=0)
    assert batch["input_ids"].dtype == torch.long and batch["input_ids"].shape == (3, 5)
    assert batch["attention_mask"].dtype == torch.bool and batch["attention_mask"].shape == (3, 5)
    assert batch["input_ids"][1].tolist() == [2, 3, 0, 0, 0]
    assert batch["attention_mask"].sum(dim=1).tolist() == [3, 2, 5]
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == [1, 0, 2]


def test_collate_without_labels_and_other_pad_id():
    batch = collate([[5], [5, 6]], pad_id=9)
    assert set(batch) == {"input_ids", "attention_mask"}
    assert batch["input_ids"].tolist() == [[5, 9], [5, 6]]
    assert batch["attention_mask"].tolist() == [[True, False], [True, True]]


def test_encoded_split_batch_and_lengths():
    split = EncodedSplit(ids=[[2, 3], [2, 5, 6, 3], [2, 7, 3]], labels=[0, 1, 1], texts=["a", "b c", "d"])
    assert len(split) == 3 and split.lines == [0, 0, 0]
    assert split.lengths.tolist() == [2, 4, 3]
    batch = split.batch([2, 0])
    assert batch["input_ids"].tolist() == [[2, 7, 3], [2, 3, 0]]
    assert batch["labels"].tolist() == [1, 0]


def test_encoded_split_checks_sizes():
    with pytest.raises(ValueError):
        EncodedSplit(ids=[[2, 3]], labels=[0, 1], texts=["a"])


@pytest.mark.parametrize("overhead", [None, 0, 24, 4096])
def test_inference_batches_hold_every_sequence_once_shortest_first(lengths, overhead):
    batches = inference_batches(lengths.tolist(), 32, overhead)
    order = flat(batches)
    assert sorted(order) == list(range(len(lengths)))
    assert order == sorted(range(len(lengths)), key=lambda i: lengths[i])  # ties keep the input order
    assert all(1 <= len(batch) <= 32 for batch in batches)


def test_plain_inference_batches_cut_every_batch_size():
    batches = inference_batches([5, 3, 9, 3, 7], 2)
    assert batches == [[1, 3], [0, 4], [2]]
    assert inference_batches([], 4) == [] and inference_batches([], 4, pass_overhead=8) == []


def passes_cost(batches, lengths, overhead):
    return sum(overhead + len(batch) * max(lengths[i] for i in batch) for batch in batches)


def cheapest_by_brute_force(lengths, batch_size, overhead):
    """The least cost over every way of cutting the sorted lengths into passes of at most batch_size."""
    ordered = sorted(lengths)
    best = float("inf")
    for mask in range(2 ** (len(ordered) - 1)):  # bit i set: a pass ends after sorted sequence i
        cost, start = 0.0, 0
        for i in range(len(ordered)):
            if i == len(ordered) - 1 or mask >> i & 1:
                if i + 1 - start > batch_size:
                    break
                cost += overhead + (i + 1 - start) * ordered[i]
                start = i + 1
        else:
            best = min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_inference_batches_cost_the_least_of_every_possible_cut(seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 60, size=9).tolist()
    for overhead in (0, 3, 17.5, 60, 500):
        for batch_size in (2, 4, 9):
            batches = inference_batches(lengths, batch_size, overhead)
            assert all(len(batch) <= batch_size for batch in batches)
            assert passes_cost(batches, lengths, overhead) == pytest.approx(
                cheapest_by_brute_force(lengths, batch_size, overhead)
            )


def test_the_pass_overhead_decides_between_one_padded_pass_and_passes_of_similar_lengths(lengths):
    lengths = lengths.tolist()
    plain = inference_batches(lengths, 32)
    costly = inference_batches(lengths, 32, pass_overhead=10**6)  # a pass costs more than any padding
    assert len(costly) == len(plain)  # as few passes as plain ones, cut where they pad least
    free = inference_batches(lengths, 32, pass_overhead=0)  # a pass costs nothing: no padding at all
    assert all(len({lengths[i] for i in batch}) == 1 for batch in free)
    cuts = (plain, costly, inference_batches(lengths, 32, 16), free)
    padded = [sum(len(batch) * lengths[batch[-1]] for batch in cut) for cut in cuts]
    assert padded[0] >= padded[1] >= padded[2] >= padded[3] == sum(lengths)
    with pytest.raises(ValueError, match="pass_overhead must be at least 0"):
        inference_batches(lengths, 32, pass_overhead=-1)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        inference_batches(lengths, 0)


def test_one_mixed_request_batch_is_cut_by_its_model_s_pass_overhead():
    lengths = [40, 6, 7, 5, 38, 12, 6, 80]
    assert inference_batches(lengths, 32) == [[3, 1, 6, 2, 5, 4, 0, 7]]
    assert inference_batches(lengths, 32, pass_overhead=20) == [[3, 1, 6, 2, 5], [4, 0], [7]]  # a large model
    assert inference_batches(lengths, 32, pass_overhead=512) == [[3, 1, 6, 2, 5, 4, 0, 7]]  # a tiny one
