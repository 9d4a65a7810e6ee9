"""Curriculum schedulers: the contract over every registered one, and each one's sampling behaviour."""

from __future__ import annotations

import json

import numpy as np
import pytest

from attncoach.curriculum.samplers import (
    SCHEDULERS,
    SchedulerSettings,
    in_proportion,
    make_scheduler,
    within_class_rank,
)
from attncoach.data.batching import LengthBucketBatchSampler

N = 200
LENGTHS = np.random.default_rng(0).integers(3, 40, size=N)
LABELS = np.arange(N) % 3
SCORES = np.random.default_rng(1).random(N)  # higher = harder


def _settings(**kw):
    base = dict(batch_size=8, bucket_size=4, seed=3, total_examples=8 * 150, start=0.2, window_batches=4)
    return SchedulerSettings(**{**base, **kw})


def _make(name, **kw):
    return make_scheduler(name, LENGTHS, LABELS, SCORES, _settings(**kw))


def _measure(indices):  # a "model" whose loss is the example's score
    return SCORES[indices] * 2


def _feedback(indices):
    indices = np.asarray(indices)
    return SCORES[indices], SCORES[indices] < 0.6  # easy examples are answered right


def _drive(scheduler, rounds, start=0):
    """Train through ``rounds`` rounds; returns every batch, in order."""
    seen = []
    for r in range(start, start + rounds):
        for batch in scheduler.batches(r, _measure):
            seen.append(list(batch))
            scheduler.update(np.asarray(batch), *_feedback(batch))
    return seen


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_contract_batches_are_valid_and_deterministic(name):
    a, b = _make(name), _make(name)
    first, second = _drive(a, 6), _drive(b, 6)
    assert first == second, "same seed and feedback, same schedule"
    flat = [i for batch in first for i in batch]
    assert flat and all(0 <= i < N for i in flat)
    assert all(1 <= len(batch) <= 8 for batch in first)
    assert a.seen == len(flat)
    assert a.batches(5, _measure) == a.batches(5, _measure), "a round is chosen once"


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_contract_state_round_trip_continues_the_same_schedule(name):
    reference = _make(name)
    _drive(reference, 3)
    middle = reference.batches(3, _measure)
    done = middle[:2]  # killed two batches into round 3
    for batch in done:
        reference.update(np.asarray(batch), *_feedback(batch))
    state = json.loads(json.dumps(reference.state_dict()))
    resumed = _make(name)
    resumed.load_state_dict(state)
    assert resumed.batches(3, _measure) == middle
    rest_ref = []
    for batch in middle[2:]:
        rest_ref.append(batch)
        reference.update(np.asarray(batch), *_feedback(batch))
    for batch in middle[2:]:
        resumed.update(np.asarray(batch), *_feedback(batch))
    assert _drive(resumed, 3, start=4) == _drive(reference, 3, start=4)


def test_state_of_another_scheduler_is_refused():
    with pytest.raises(ValueError, match="leitner"):
        _make("uniform").load_state_dict(_make("leitner").state_dict())


def test_uniform_is_exactly_the_length_bucket_epoch_order():
    sampler = LengthBucketBatchSampler(LENGTHS, 8, seed=3, bucket_size=4)
    uniform = _make("uniform")
    for epoch in range(3):
        assert uniform.batches(epoch) == sampler.batches(epoch)


def test_leitner_promotes_right_answers_and_sends_wrong_ones_back_to_box_zero():
    leitner = _make("leitner", boxes=3)
    _drive(leitner, 1)  # round 0 shows everything once
    easy = SCORES < 0.6
    assert (leitner.boxes[easy] == 1).all() and (leitner.boxes[~easy] == 0).all()
    due = sorted(i for b in leitner.batches(1) for i in b)
    assert set(due) <= set(np.flatnonzero(~easy).tolist()), "box 1 rests on odd rounds"
    assert len(due) >= 0.5 * np.count_nonzero(~easy) and set(LABELS[due]) == {0, 1, 2}
    _drive(leitner, 1, start=1)
    assert len({i for b in leitner.batches(2) for i in b} & set(np.flatnonzero(easy))) > 0, "box 1 is due again"
    _drive(leitner, 1, start=2)
    assert (leitner.boxes[easy] == 2).all(), "promoted again, capped at the top box"
    # a wrong answer from any box goes back to box 0
    leitner.update(np.array([int(np.flatnonzero(easy)[0])]), np.array([2.0]), np.array([False]))
    assert leitner.boxes[np.flatnonzero(easy)[0]] == 0
    # fewer examples per round than uniform: the budget goes to the ones not yet answered right
    assert sum(len(b) for b in leitner.batches(3)) < N


def test_competence_grows_from_the_easiest_fraction_of_each_class_to_everything():
    comp = _make("competence", start=0.2, horizon_examples=600, repeat=True)
    first = sorted({i for b in comp.batches(0) for i in b})
    rank = within_class_rank(SCORES, LABELS)
    assert max(rank[first]) <= 0.2 + 1 / 66, "round 0 draws from the easiest 20 % of each class only"
    assert {LABELS[i] for i in first} == {0, 1, 2}
    pools = []
    for r in range(40):
        chosen = [i for b in comp.batches(r) for i in b]
        pools.append(max(rank[chosen]))
        for batch in comp.batches(r):
            comp.update(np.asarray(batch), *_feedback(batch))
    assert all(b >= a - 0.05 for a, b in zip(pools, pools[1:])), "the pool widens"
    assert comp.competence() == 1.0 and sorted(i for b in comp.batches(40) for i in b) == list(range(N))


def test_anti_curriculum_starts_from_the_hardest():
    anti = _make("anti", start=0.2)
    first = [i for b in anti.batches(0) for i in b]
    assert min(within_class_rank(SCORES, LABELS)[first]) >= 0.8 - 1 / 66


def test_self_paced_trains_the_low_loss_examples_and_measures_what_it_does_not_know():
    asked = []

    def measure(indices):
        asked.append(np.asarray(indices).copy())
        return SCORES[indices] * 2

    spl = _make("self_paced", start=0.3, refresh=0.5)
    chosen = sorted(i for b in spl.batches(0, measure) for i in b)
    assert len(asked) == 1 and sorted(asked[0].tolist()) == list(range(N)), "every loss measured at the start"
    assert max(within_class_rank(SCORES, LABELS)[chosen]) <= 0.3 + 1 / 66
    for batch in spl.batches(0, measure):
        spl.update(np.asarray(batch), *_feedback(batch))
    spl.batches(1, measure)
    left_out = sorted(set(range(N)) - set(chosen))
    assert len(asked) == 2 and len(asked[1]) == int(0.5 * len(left_out) + 0.5), "half of the left-out re-measured"
    assert set(asked[1].tolist()) <= set(left_out), "the examples just trained on have a fresh loss already"
    with pytest.raises(RuntimeError, match="measure"):
        _make("self_paced").batches(0, None)


def test_competence_needs_scores():
    with pytest.raises(ValueError, match="score"):
        make_scheduler("competence", LENGTHS, LABELS, None, _settings())


@pytest.mark.parametrize("name", ["competence", "anti"])
def test_without_repeats_each_example_is_drawn_once_per_pass_easiest_first(name):
    comp = _make(name, start=0.2, repeat=False, horizon_examples=600)
    order = []
    r = 0
    while len(order) < N:
        for batch in comp.batches(r):
            order += batch
            comp.update(np.asarray(batch), *_feedback(batch))
        r += 1
    assert len(order) == N and sorted(order) == list(range(N)), "one pass: every example exactly once"
    rank = within_class_rank(-SCORES if name == "anti" else SCORES, LABELS)
    first, last = rank[order[: N // 4]].mean(), rank[order[-N // 4 :]].mean()
    assert first < 0.35 < 0.6 < last, (first, last)
    state = json.loads(json.dumps(comp.state_dict()))
    again = _make(name, start=0.2, repeat=False, horizon_examples=600)
    again.load_state_dict(state)
    assert again.batches(r) == comp.batches(r) and np.array_equal(again.drawn, comp.drawn)


def test_with_repeats_the_pool_is_sampled_like_platanios():
    comp = _make("competence", start=0.1, repeat=True, horizon_examples=10**6)
    drawn = [i for r in range(3) for b in comp.batches(r) for i in b]
    assert len(set(drawn)) < len(drawn), "the small early pool is drawn from again and again"


def test_leitner_rounds_keep_the_class_proportions_of_the_data():
    labels = np.array([0] * 50 + [1] * 50)
    wrong_mostly_class_0 = np.concatenate([np.arange(40), np.arange(50, 60)])  # 40 of class 0, 10 of class 1
    kept = in_proportion(wrong_mostly_class_0, labels, np.random.default_rng(0))
    counts = np.bincount(labels[kept], minlength=2)
    assert set(kept) <= set(wrong_mostly_class_0)
    assert counts[1] == 10 and counts[0] == 13, "class 0 capped at its share of a round sized >= half the due"
    assert in_proportion(np.arange(10), labels, np.random.default_rng(0)).tolist() == list(range(10))


def test_progress_is_the_box_sizes_the_competence_or_nothing():
    leitner = _make("leitner", boxes=3)
    assert leitner.progress() == {"box_0": N, "box_1": 0, "box_2": 0}
    _drive(leitner, 1)
    easy = int(np.count_nonzero(SCORES < 0.6))
    assert leitner.progress() == {"box_0": N - easy, "box_1": easy, "box_2": 0}
    comp = _make("competence", start=0.2, horizon_examples=600)
    assert comp.progress() == {"competence": pytest.approx(0.2)}
    assert _make("uniform").progress() == {}
