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
from attncoach.data.readers import shorten
from attncoach.errors import AttncoachError

logger = logging.getLogger("attncoach")

SPLITS = ("train", "val", "test")
RARE_CLASS_EXAMPLES = 5
"""A class with fewer examples than this is named in a warning: too few to learn or to measure."""
SMALL_SPLIT_ROWS = 10
"""A val or test split with fewer rows than this is named in a warning: its metrics are noisy."""


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
    split at random. A carved split is stratified by label; the row of a class with a
    single row stays in train. Splits keep the source order; the result depends only
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
    """Take ``size`` examples out at random, stratified by label.

    The row of a class with a single row stays on the kept side (it cannot be on both), and
    every other class is stratified. When even that is impossible, the split is random.
    """
    if size == 0:
        return list(examples), []
    counts = Counter(e.label for e in examples)
    pool = [i for i, e in enumerate(examples) if counts[e.label] > 1]
    labels: Optional[list[str]] = [examples[i].label for i in pool]
    problem = _stratify_problem(labels, size)
    if problem:
        logger.warning("cannot stratify the %s split (%s); splitting without stratification", name, problem)
        pool, labels = list(range(len(examples))), None
    _, held = train_test_split(
        np.asarray(pool),
        test_size=size,
        random_state=seed % 2**32,  # sklearn needs [0, 2**32)
        stratify=labels,
    )
    held_at = set(held.tolist())
    kept = [e for i, e in enumerate(examples) if i not in held_at]
    return kept, [examples[i] for i in sorted(held_at)]


def _stratify_problem(labels: list[str], size: int) -> Optional[str]:
    """Why a stratified split of ``size`` of these rows is impossible, or None when it is possible."""
    counts = Counter(labels)
    if size >= len(labels):
        return f"only {len(labels)} rows belong to classes with more than one row"
    if size < len(counts) or len(labels) - size < len(counts):
        return f"{size} of {len(labels)} rows cannot hold all {len(counts)} classes on both sides"
    return None


def rare_class_warning(examples: list[Example], minimum: int = RARE_CLASS_EXAMPLES) -> Optional[str]:
    """A warning naming the classes with fewer than ``minimum`` examples (rarest first), or None.

    Example:
        >>> rare_class_warning([Example("a", "pos"), Example("b", "neg"), Example("c", "neg")], minimum=2)
        "1 class has fewer than 2 examples: 'pos' (1); too few to learn or to measure (a typo in a label?)"
    """
    counts = Counter(e.label for e in examples)
    rare = sorted((count, label) for label, count in counts.items() if count < minimum)
    if not rare:
        return None
    shown = ", ".join(f"'{shorten(label)}' ({count})" for count, label in rare[:10])
    more = f" and {len(rare) - 10} more" if len(rare) > 10 else ""
    has = "classes have" if len(rare) > 1 else "class has"
    return (
        f"{len(rare)} {has} fewer than {minimum} examples: {shown}{more}; "
        "too few to learn or to measure (a typo in a label?)"
    )


def small_split_warning(sizes: dict[str, int], minimum: int = SMALL_SPLIT_ROWS, unit: str = "rows") -> Optional[str]:
    """A warning naming the val / test splits with fewer than ``minimum`` rows (``unit``), or None.

    Example:
        >>> small_split_warning({"train": 40, "val": 5, "test": 5})
        'only 5 val and 5 test rows (fewer than 10): their metrics will be noisy'
    """
    small = [f"{sizes[name]} {name}" for name in ("val", "test") if 0 < sizes.get(name, 0) < minimum]
    if not small:
        return None
    their = "their metrics" if len(small) > 1 else "its metrics"
    return f"only {' and '.join(small)} {unit} (fewer than {minimum}): {their} will be noisy"


def _require_two_classes(examples: list[Example], label_column: str, where: str) -> None:
    classes = {e.label for e in examples}
    if len(classes) < 2:
        only = next(iter(classes), "")
        raise AttncoachError(
            f"label column '{label_column}' has a single class ('{only}'){where}; a classifier needs at least two"
        )
