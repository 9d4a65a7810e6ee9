"""Remove duplicate texts and split examples into train / val / test.

Example:
    >>> kept, removed = dedupe(examples)
    >>> splits = split_examples(kept, val_fraction=0.1, test_fraction=0.1, seed=0)
    >>> sorted(splits)
    ['test', 'train', 'val']
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Optional

import numpy as np
from sklearn.model_selection import train_test_split

from attncoach.data.example import Example
from attncoach.errors import AttncoachError

logger = logging.getLogger("attncoach")

SPLITS = ("train", "val", "test")


def dedupe(examples: list[Example]) -> tuple[list[Example], int]:
    """Keep the first example of every distinct text (exact match).

    Logs how many duplicates went, and how many of them disagreed with the kept label.

    Returns:
        The kept examples in their original order and the number removed.
    """
    label_of_text: dict[str, str] = {}
    kept = []
    conflicting = 0
    for example in examples:
        if example.text in label_of_text:
            conflicting += label_of_text[example.text] != example.label
            continue
        label_of_text[example.text] = example.label
        kept.append(example)
    removed = len(examples) - len(kept)
    if removed:
        logger.info(
            "removed %d duplicate texts (%d of them with a label other than the first occurrence's)",
            removed,
            conflicting,
        )
    return kept, removed


def split_examples(
    examples: list[Example], val_fraction: float, test_fraction: float, seed: int, label_column: str = "label"
) -> dict[str, list[Example]]:
    """Split examples into train / val / test, stratified by label and seeded.

    When the examples carry a split (``data.split_column``, or a built-in corpus with an
    official split such as banking77), that split is kept; a missing val or test split is
    then carved from train (as a fraction of all examples). Otherwise the examples are
    split at random. Splits keep the source order; the result depends only
    on the examples and the seed. With a fraction of 0 the split is empty.

    Args:
        examples: usable, de-duplicated examples.
        val_fraction: share of all examples for validation.
        test_fraction: share of all examples for the test.
        seed: the random seed.
        label_column: the label column's name, for messages.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``.

    Raises:
        AttncoachError: a single class, no training rows, or too few rows to split.
    """
    _require_two_classes(examples, label_column, "")
    if any(e.split is not None for e in examples):
        splits = _given_splits(examples, val_fraction, test_fraction, seed)
    else:
        splits = _random_splits(examples, val_fraction, test_fraction, seed)
    _require_two_classes(splits["train"], label_column, " in the train split")
    return splits


def _random_splits(
    examples: list[Example], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[Example]]:
    n_test = _holdout_size(len(examples), test_fraction)
    n_val = _holdout_size(len(examples), val_fraction)
    _require_training_rows(len(examples), len(examples) - n_test - n_val, val_fraction, test_fraction)
    rest, test = _carve(examples, n_test, seed, "test")
    train, val = _carve(rest, n_val, seed, "val")
    return {"train": train, "val": val, "test": test}


def _given_splits(
    examples: list[Example], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[Example]]:
    splits = {name: [e for e in examples if e.split == name] for name in SPLITS}
    if not splits["train"]:
        raise AttncoachError("no row has the split 'train'; the split column must mark the training rows")
    for name, fraction in (("test", test_fraction), ("val", val_fraction)):
        if splits[name] or fraction <= 0:
            continue
        size = _holdout_size(len(examples), fraction)
        _require_training_rows(len(examples), len(splits["train"]) - size, val_fraction, test_fraction)
        splits["train"], splits[name] = _carve(splits["train"], size, seed, name)
        logger.info("the data has no %s rows; took %d rows from train for it", name, size)
    return splits


def _holdout_size(total: int, fraction: float) -> int:
    return 0 if fraction <= 0 else max(1, round(fraction * total))


def _require_training_rows(total: int, n_train: int, val_fraction: float, test_fraction: float) -> None:
    if n_train < 2:
        raise AttncoachError(
            f"too few rows ({total}) to split with data.val_fraction={val_fraction} and "
            f"data.test_fraction={test_fraction}: at least 2 must be left for training"
        )


def _carve(examples: list[Example], size: int, seed: int, name: str) -> tuple[list[Example], list[Example]]:
    """Take ``size`` examples out at random, stratified by label when every class allows it."""
    if size == 0:
        return list(examples), []
    labels = [e.label for e in examples]
    problem = _stratify_problem(labels, size)
    if problem:
        logger.warning("cannot stratify the %s split (%s); splitting without stratification", name, problem)
    rest, held = train_test_split(
        np.arange(len(examples)),
        test_size=size,
        random_state=seed % 2**32,  # sklearn needs [0, 2**32)
        stratify=None if problem else labels,
    )
    return [examples[i] for i in sorted(rest)], [examples[i] for i in sorted(held)]


def _stratify_problem(labels: list[str], size: int) -> Optional[str]:
    """Why a stratified split of ``size`` rows is impossible, or None when it is possible."""
    counts = Counter(labels)
    rarest, rarest_count = min(counts.items(), key=lambda item: (item[1], item[0]))
    if rarest_count < 2:
        return f"class '{rarest}' has a single row"
    if size < len(counts) or len(labels) - size < len(counts):
        return f"{size} of {len(labels)} rows cannot hold all {len(counts)} classes on both sides"
    return None


def _require_two_classes(examples: list[Example], label_column: str, where: str) -> None:
    classes = {e.label for e in examples}
    if len(classes) < 2:
        only = next(iter(classes), "")
        raise AttncoachError(
            f"label column '{label_column}' has a single class ('{only}'){where}; a classifier needs at least two"
        )
