"""The greedy word-importance attack on a stub classifier: flips, budgets, exact query counts, batching."""

from __future__ import annotations

import numpy as np
import pytest

from attncoach.robust.attack import attack_summary, greedy_attack


class Stub:
    """A two-class black box that says positive (class 1) while ``key`` is a word of the text.

    It counts every text it scores and every call.
    """

    def __init__(self, key: str | None = "excellent"):
        self.key = key
        self.texts = 0
        self.calls = 0

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.texts += len(texts)
        self.calls += 1
        p = np.array([0.9 if self.key in t.split() else 0.3 for t in texts])
        return np.stack([1 - p, p], axis=1)


TEXT = "the food was excellent today"


def rngs(n: int, seed: int = 0) -> list[np.random.Generator]:
    return [np.random.default_rng([seed, i]) for i in range(n)]


def test_attack_flips_the_prediction_by_editing_the_key_word_and_counts_every_query():
    model = Stub()
    [result] = greedy_attack([TEXT], [1], model, budget=50, rngs=rngs(1))
    assert result.success and not result.skipped
    assert result.predicted == 0 and result.gold_probability == pytest.approx(0.3)
    assert result.edited == 1 and result.words == 5
    words = result.adversarial.split()
    assert words[:3] + words[4:] == ["the", "food", "was", "today"] and words[3] != "excellent"
    # the text and its 5 deletions, then at most one edit per operation of the most important word
    assert 6 < result.queries <= 10
    assert result.queries == model.texts


def test_attack_that_cannot_flip_spends_exactly_the_budget():
    model = Stub(key=None)  # never positive: gold 0 cannot be flipped by any edit
    [result] = greedy_attack([TEXT], [0], model, budget=12, rngs=rngs(1))
    assert not result.success and not result.skipped
    assert result.queries == 12 == model.texts
    assert result.edited == 0 and result.adversarial == TEXT


def test_a_budget_smaller_than_the_words_leaves_room_for_edits():
    model = Stub()
    [result] = greedy_attack([TEXT], [1], model, budget=3, rngs=rngs(1))
    assert result.queries == 3 == model.texts  # the text, then two edits of the first word (no scoring)
    assert not result.success


def test_a_text_the_model_already_gets_wrong_is_skipped_after_one_batch():
    model = Stub()
    [result] = greedy_attack(["a plain text"], [1], model, budget=50, rngs=rngs(1))
    assert result.skipped and not result.success
    assert result.queries == 3 == model.texts  # the text and its two editable words deleted
    summary = attack_summary([result], budget=50)
    assert (summary["attacked"], summary["skipped"], summary["success_rate"]) == (0, 1, 0.0)


def test_examples_share_model_calls_without_changing_their_results():
    texts = [f"{TEXT} {w}" for w in ("again", "surely", "indeed", "friend", "honestly")]
    one_by_one, together = Stub(), Stub()
    alone = greedy_attack(texts, [1] * 5, one_by_one, budget=50, rngs=rngs(5), concurrent=1)
    shared = greedy_attack(texts, [1] * 5, together, budget=50, rngs=rngs(5), concurrent=5)
    assert alone == shared
    assert together.texts == one_by_one.texts == sum(r.queries for r in shared)
    assert together.calls < one_by_one.calls


def test_the_same_generators_give_the_same_attack_and_others_may_not():
    texts = [TEXT, "excellent service and excellent food here"]
    first = greedy_attack(texts, [1, 1], Stub(), budget=50, rngs=rngs(2, seed=3))
    again = greedy_attack(texts, [1, 1], Stub(), budget=50, rngs=rngs(2, seed=3))
    assert first == again
    others = [greedy_attack([TEXT], [1], Stub(), budget=50, rngs=rngs(1, seed=s))[0].adversarial for s in range(8)]
    assert len(set(others)) > 1


def test_summary_counts_successes_queries_and_edited_words():
    texts = [TEXT, "nothing to see here"]
    results = greedy_attack(texts, [1, 0], Stub(), budget=20, rngs=rngs(2))
    summary = attack_summary(results, budget=20, shown=1)
    assert (summary["attacked"], summary["successes"], summary["success_rate"]) == (2, 1, 0.5)
    assert summary["mean_queries_per_success"] == results[0].queries
    assert summary["mean_queries"] == (results[0].queries + results[1].queries) / 2
    assert summary["mean_fraction_words_edited"] == pytest.approx(1 / 5)
    assert [e["text"] for e in summary["examples"]] == [TEXT]
    assert results[1].queries == 20


def test_budget_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        greedy_attack([TEXT], [1], Stub(), budget=0, rngs=rngs(1))
