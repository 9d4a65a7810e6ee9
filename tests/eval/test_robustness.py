"""The robustness report on a stub model: conditions, calibration, attacks, groups, determinism."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from attncoach.eval.robustness import (
    CONDITIONS,
    LabelledTexts,
    attack_order,
    example_rng,
    group_metrics,
    robustness_report,
    softmax,
)

WORDS = {"great": 1, "love": 1, "awful": 0, "hate": 0}


def bag_of_words(texts: list[str]) -> np.ndarray:
    """Logits of a two-class stub: +2 per positive word, -2 per negative word it knows."""
    scores = np.array([sum(2.0 if WORDS.get(w) == 1 else -2.0 for w in t.split() if w in WORDS) for t in texts])
    return np.stack([-scores / 2, scores / 2], axis=1)


def data(groups: bool = False) -> LabelledTexts:
    texts = [f"the service was {w} today with friends {i}" for i in range(12) for w in ("great", "awful")]
    gold = np.array([1, 0] * 12)
    gold[:2] = [0, 1]  # two the stub gets wrong
    names = [("news" if i < 12 else "shop") for i in range(24)] if groups else []
    return LabelledTexts(texts, gold, ["negative", "positive"], "stub texts", names, "source" if groups else None)


def test_report_rows_for_every_condition_and_the_attacks():
    report = robustness_report(bag_of_words, data(), seed=0, attack_examples=5, query_budget=30)
    assert [row["name"] for row in report["conditions"]] == [c.name for c in CONDITIONS]
    clean = report["conditions"][0]
    assert clean["accuracy"] == pytest.approx(22 / 24) and clean["drop_points"] == 0.0
    for row in report["conditions"]:
        assert 0 <= row["ece"] <= 1 and row["ece_calibrated"] is None
        assert row["drop_points"] == pytest.approx(100 * (clean["macro_f1"] - row["macro_f1"]))
    greedy = report["attacks"][0]
    assert greedy["name"] == "greedy_word_importance" and greedy["ran"]
    # an edited sentiment word leaves the stub at a tie, which it calls negative: the positives flip
    texts = data()
    attacked = attack_order(texts.gold, bag_of_words(texts.texts).argmax(axis=1), seed=0, count=5)
    assert greedy["attacked"] == 5 and greedy["successes"] == sum(texts.gold[i] == 1 for i in attacked) > 0
    assert greedy["mean_fraction_words_edited"] == pytest.approx(1 / 8)
    assert {(e["gold"], e["predicted"]) for e in greedy["examples"]} == {("positive", "negative")}
    assert report["groups"] is None
    json.dumps(report, allow_nan=False)


def test_deepwordbug_row_says_whether_textattack_ran():
    report = robustness_report(bag_of_words, data(), attack_examples=2, query_budget=30)
    row = report["attacks"][1]
    assert row["name"] == "deepwordbug"
    if importlib.util.find_spec("textattack") is None:
        assert row == {
            "name": "deepwordbug",
            "description": "TextAttack DeepWordBug recipe",
            "ran": False,
            "query_budget": 30,
            "reason": "textattack not installed",
        }
    else:
        assert row["ran"] or row["reason"].startswith("textattack")


def test_no_attack_examples_means_no_attack_rows():
    assert robustness_report(bag_of_words, data(), attack_examples=0)["attacks"] == []


def test_calibrated_ece_uses_the_temperature():
    report = robustness_report(bag_of_words, data(), attack_examples=0, temperature=2.0)
    clean = report["conditions"][0]
    assert clean["ece_calibrated"] is not None and clean["ece_calibrated"] != clean["ece"]
    assert report["temperature"] == 2.0
    assert np.allclose(softmax(np.array([[0.0, 2.0]]), 2.0), softmax(np.array([[0.0, 1.0]])))


def test_same_seed_same_report_and_perturbations_are_seeded_per_example():
    first = robustness_report(bag_of_words, data(), seed=4, attack_examples=6, query_budget=30)
    again = robustness_report(bag_of_words, data(), seed=4, attack_examples=6, query_budget=30)
    for report in (first, again):
        for row in report["attacks"]:
            row.pop("seconds", None)
    assert first == again
    noise = CONDITIONS[2].perturb
    text = data().texts[0]
    assert noise(text, example_rng(4, "char_noise_20", 0)) == noise(text, example_rng(4, "char_noise_20", 0))
    drawn = {noise(text, example_rng(seed, "char_noise_20", 0)) for seed in range(6)}
    assert len(drawn) > 1


def test_attack_order_takes_correct_examples_only_in_a_seeded_order():
    gold = np.array([0, 1, 0, 1, 0, 1])
    predicted = np.array([0, 1, 1, 1, 0, 0])
    order = attack_order(gold, predicted, seed=1, count=10)
    assert sorted(order) == [0, 1, 3, 4]
    assert attack_order(gold, predicted, seed=1, count=2) == order[:2]
    assert {tuple(attack_order(gold, predicted, seed=s, count=4)) for s in range(6)} != {tuple(order)}


def test_group_metrics_and_the_worst_group():
    report = robustness_report(bag_of_words, data(groups=True), attack_examples=0)
    groups = report["groups"]
    assert groups["column"] == "source" and groups["worst"] == "news"  # both mistakes are news texts
    assert [(row["group"], row["n"]) for row in groups["rows"]] == [("news", 12), ("shop", 12)]
    assert groups["rows"][0]["accuracy"] == pytest.approx(10 / 12) and groups["rows"][1]["accuracy"] == 1.0


def test_worst_group_ties_go_to_lower_accuracy_then_name():
    texts = LabelledTexts(["a", "b", "c", "d"], np.array([0, 1, 0, 1]), ["n", "p"], "x", ["z", "z", "y", "y"], "g")
    assert group_metrics(texts, np.array([0, 1, 0, 1]))["worst"] == "y"
    assert group_metrics(texts, np.array([0, 1, 1, 1]))["worst"] == "y"
    assert group_metrics(texts, np.array([1, 1, 0, 1]))["worst"] == "z"
