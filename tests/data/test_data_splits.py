"""dedupe and split_examples: stratified, disjoint, complete, deterministic."""

from __future__ import annotations

import logging
from collections import Counter

import pytest

from attncoach.data.example import Example
from attncoach.data.splits import dedupe, rare_class_warning, small_split_warning, split_examples
from attncoach.errors import AttncoachError


def make_examples(counts: dict[str, int], split: str | None = None) -> list[Example]:
    """Distinct examples, ``counts[label]`` per label, labels interleaved."""
    examples = []
    for i in range(max(counts.values())):
        for label, count in counts.items():
            if i < count:
                examples.append(Example(f"{label} text {i}", label, split, len(examples) + 2))
    return examples


def texts(examples: list[Example]) -> list[str]:
    return [e.text for e in examples]


def test_dedupe_keeps_first_and_counts_conflicts(caplog):
    examples = [
        Example("a", "x", line=2),
        Example("b", "y", line=3),
        Example("a", "x", line=4),
        Example("a", "z", line=5),
        Example("c", "y", line=6),
    ]
    with caplog.at_level(logging.INFO, logger="attncoach"):
        kept, removed = dedupe(examples)
    assert [(e.text, e.line) for e in kept] == [("a", 2), ("b", 3), ("c", 6)]
    assert removed == 2
    assert "removed 2 duplicate texts (1 of them" in caplog.text


def test_dedupe_without_duplicates():
    examples = make_examples({"a": 3, "b": 3})
    assert dedupe(examples) == (examples, 0)


def test_random_split_is_stratified_disjoint_and_complete():
    examples = make_examples({"neg": 500, "neu": 300, "pos": 200})
    splits = split_examples(examples, 0.1, 0.2, seed=0)
    assert {name: len(rows) for name, rows in splits.items()} == {"train": 700, "val": 100, "test": 200}
    all_texts = [t for rows in splits.values() for t in texts(rows)]
    assert sorted(all_texts) == sorted(texts(examples))  # disjoint and complete
    for rows in splits.values():
        shares = Counter(e.label for e in rows)
        assert abs(shares["neg"] / len(rows) - 0.5) < 0.02
        assert abs(shares["pos"] / len(rows) - 0.2) < 0.02
    assert [e.line for e in splits["train"]] == sorted(e.line for e in splits["train"])  # source order kept


def test_split_is_deterministic_per_seed_and_differs_across_seeds():
    examples = make_examples({"a": 60, "b": 40})
    first = split_examples(examples, 0.2, 0.2, seed=3)
    again = split_examples(list(examples), 0.2, 0.2, seed=3)
    other = split_examples(examples, 0.2, 0.2, seed=4)
    assert first == again
    assert texts(first["test"]) != texts(other["test"])


def test_zero_fractions_leave_empty_splits():
    splits = split_examples(make_examples({"a": 5, "b": 5}), 0.0, 0.0, seed=0)
    assert (len(splits["train"]), splits["val"], splits["test"]) == (10, [], [])


def test_single_row_class_stays_in_train_and_the_others_stay_stratified(caplog):
    examples = make_examples({"a": 50, "b": 30, "c": 1})
    with caplog.at_level(logging.WARNING, logger="attncoach"):
        splits = split_examples(examples, 0.1, 0.2, seed=0)
    assert "cannot stratify" not in caplog.text
    assert sorted(t for rows in splits.values() for t in texts(rows)) == sorted(texts(examples))
    assert [e.label for e in splits["train"]].count("c") == 1
    assert Counter(e.label for e in splits["test"]) == {"a": 10, "b": 6}  # 16 of 81 rows, in proportion
    assert Counter(e.label for e in splits["val"]) == {"a": 5, "b": 3}


def test_split_that_cannot_hold_every_class_falls_back_to_random(caplog):
    examples = make_examples({"a": 5, "b": 5, "c": 5, "d": 5})
    with caplog.at_level(logging.WARNING, logger="attncoach"):
        splits = split_examples(examples, 0.1, 0.1, seed=0)
    assert (len(splits["val"]), len(splits["test"])) == (2, 2)
    assert "cannot stratify the test split (2 of 20 rows cannot hold all 4 classes" in caplog.text


def test_only_single_row_classes_fall_back_to_random(caplog):
    examples = make_examples({"a": 1, "b": 1, "c": 1, "d": 1, "e": 2})
    with caplog.at_level(logging.WARNING, logger="attncoach"):
        splits = split_examples(examples, 0.35, 0.35, seed=0)
    assert sum(len(rows) for rows in splits.values()) == 6
    assert "cannot stratify the test split (only 2 rows belong to classes with more than one row)" in caplog.text


def test_rare_classes_are_named_rarest_first():
    examples = make_examples({"negative": 40, "positive": 40, "negativ": 1, "neutral": 4})
    assert rare_class_warning(examples) == (
        "2 classes have fewer than 5 examples: 'negativ' (1), 'neutral' (4); "
        "too few to learn or to measure (a typo in a label?)"
    )
    assert rare_class_warning(make_examples({"a": 5, "b": 9})) is None


def test_long_labels_are_cut_in_the_rare_class_warning():
    message = rare_class_warning(make_examples({"a": 9, "b": 9, "x" * 5000: 1}))
    assert "'" + "x" * 59 + "…' (1)" in message and len(message) < 200


def test_small_val_and_test_splits_are_named_with_their_counts():
    assert small_split_warning({"train": 40, "val": 6, "test": 12}) == (
        "only 6 val rows (fewer than 10): its metrics will be noisy"
    )
    assert small_split_warning({"train": 9, "val": 3, "test": 2}) == (
        "only 3 val and 2 test rows (fewer than 10): their metrics will be noisy"
    )
    assert small_split_warning({"train": 9, "val": 10, "test": 10}) is None


def test_given_split_is_kept():
    examples = make_examples({"a": 4, "b": 4}, "train") + make_examples({"a": 2, "b": 2}, "val")
    examples += [Example("a test", "a", "test", 99), Example("b test", "b", "test", 100)]
    splits = split_examples(examples, 0.3, 0.3, seed=0)
    assert {name: len(rows) for name, rows in splits.items()} == {"train": 8, "val": 4, "test": 2}
    assert all(e.split == name for name, rows in splits.items() for e in rows)


def test_missing_val_and_test_are_carved_from_train():
    examples = make_examples({"a": 50, "b": 50}, "train")
    splits = split_examples(examples, 0.1, 0.2, seed=1)
    assert {name: len(rows) for name, rows in splits.items()} == {"train": 70, "val": 10, "test": 20}
    assert Counter(e.label for e in splits["test"]) == {"a": 10, "b": 10}
    assert splits == split_examples(examples, 0.1, 0.2, seed=1)


def test_given_split_without_train_rows_is_an_error():
    with pytest.raises(AttncoachError, match="no row has the split 'train'"):
        split_examples(make_examples({"a": 3, "b": 3}, "test"), 0.1, 0.1, seed=0)


def test_single_class_is_an_error():
    with pytest.raises(AttncoachError) as info:
        split_examples(make_examples({"pos": 20}), 0.1, 0.1, seed=0, label_column="sentiment")
    assert str(info.value) == "label column 'sentiment' has a single class ('pos'); a classifier needs at least two"


def test_single_class_in_given_train_split_is_an_error():
    examples = make_examples({"a": 5}, "train") + make_examples({"b": 5}, "test")
    with pytest.raises(AttncoachError, match="single class \\('a'\\) in the train split"):
        split_examples(examples, 0.1, 0.1, seed=0)


@pytest.mark.parametrize("counts,val,test", [({"a": 1, "b": 1}, 0.1, 0.1), ({"a": 2, "b": 1}, 0.3, 0.3)])
def test_too_few_rows_is_an_error(counts, val, test):
    with pytest.raises(AttncoachError, match="too few rows .* at least 2 must be left for training"):
        split_examples(make_examples(counts), val, test, seed=0)
