"""The data step of the training recipe: from a DataConfig to encoded train / val / test.

Example:
    >>> data = prepare_data(cfg.data, seed=cfg.train.seed)
    >>> data.labels, data.max_length, len(data.splits["train"])
    (['negative', 'neutral', 'positive'], 48, 29795)
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from tokenizers import Tokenizer

from attncoach.config import DataConfig
from attncoach.data.batching import EncodedSplit
from attncoach.data.example import Example
from attncoach.data.readers import shorten
from attncoach.data.sources import drop_unusable, read_rows, source_name
from attncoach.data.splits import dedupe, rare_class_warning, small_split_warning, split_examples
from attncoach.data.tokenizer import (
    auto_max_length,
    closing_special_count,
    encode_texts,
    pad_token_id,
    train_tokenizer,
    truncate_ids,
)
from attncoach.errors import AttncoachError

logger = logging.getLogger("attncoach")


@dataclass
class PreparedData:
    """Everything the recipe needs from the data.

    Attributes:
        splits: "train", "val" and "test" (val or test is empty when its fraction is 0).
        labels: label names; the index of a name is its class id.
        tokenizer: the tokenizer every split was encoded with.
        max_length: the most token ids per example, special tokens included.
        stats: counts for the run's report (rows read, dropped, duplicates, splits, labels,
            truncation, how max_length was chosen) and the warnings about rare classes and
            small val / test splits.
    """

    splits: dict[str, EncodedSplit]
    labels: list[str]
    tokenizer: Tokenizer
    max_length: int
    stats: dict[str, Any]

    @property
    def pad_id(self) -> int:
        """The tokenizer's [PAD] id."""
        return pad_token_id(self.tokenizer)


def prepare_data(
    cfg: DataConfig, seed: int, tokenizer: Optional[Tokenizer] = None, labels: Optional[Sequence[str]] = None
) -> PreparedData:
    """Read, clean, split, tokenize and encode the configured data.

    Args:
        cfg: the data section of the run configuration.
        seed: the seed of the split.
        tokenizer: a tokenizer to reuse (a resumed or pretrained run); None trains one on
            the train split's texts only.
        labels: the label names of an existing model, in class-id order; None takes the
            sorted names found in the data.

    Returns:
        The encoded splits with their labels, tokenizer, max_length and stats.

    Raises:
        AttncoachError: any problem with the data, or a label outside ``labels``.
    """
    source = source_name(cfg)
    rows = read_rows(cfg)
    usable, dropped = drop_unusable(rows, source)
    examples, duplicates = dedupe(usable)
    label_list = list(labels) if labels is not None else label_names(examples)
    check_labels(examples, label_list, source)
    splits = split_examples(examples, cfg.val_fraction, cfg.test_fraction, seed, cfg.label_column)
    warnings = _size_warnings(examples, splits)
    trained_here = tokenizer is None
    if tokenizer is None:
        tokenizer = train_tokenizer(
            [e.text for e in splits["train"]],
            cfg.tokenizer,
            cfg.vocab_size,
            cfg.min_frequency,
            cfg.lowercase,
            cfg.normalize,
        )
    full_ids = {name: encode_texts(tokenizer, [e.text for e in split]) for name, split in splits.items()}
    max_length, chosen_by = _choose_max_length(cfg, full_ids["train"])
    tail = closing_special_count(tokenizer)
    encoded = {
        name: _encoded_split(splits[name], [truncate_ids(ids, max_length, tail) for ids in full_ids[name]], label_list)
        for name in splits
    }
    stats = {
        "source": source,
        "rows_read": len(rows),
        "dropped_blank_text": dropped.blank_text,
        "dropped_no_label": dropped.no_label,
        "duplicates_removed": duplicates,
        "examples": len(examples),
        "split_by": (
            f"data.split_column '{cfg.split_column}'"
            if cfg.split_column
            else "the source's own split"
            if any(e.split for e in examples)
            else f"random, seed {seed}"
        ),
        "splits": {name: len(split) for name, split in splits.items()},
        "label_counts": {name: dict(sorted(Counter(e.label for e in split).items())) for name, split in splits.items()},
        "tokenizer": {"trained_on_train_split": trained_here, "vocab_size": tokenizer.get_vocab_size()},
        "max_length": max_length,
        "max_length_chosen_by": chosen_by,
        "truncated": {name: sum(len(ids) > max_length for ids in full_ids[name]) for name in splits},
        "warnings": warnings,
    }
    logger.info(
        "data: %d examples (train %d, val %d, test %d), %d labels, max_length %d (%s)",
        len(examples),
        *(len(splits[name]) for name in ("train", "val", "test")),
        len(label_list),
        max_length,
        chosen_by,
    )
    return PreparedData(encoded, label_list, tokenizer, max_length, stats)


def _size_warnings(examples: list[Example], splits: dict[str, list[Example]]) -> list[str]:
    """Log and return the warnings about data too small to learn or measure well."""
    warnings = [
        message
        for message in (
            rare_class_warning(examples),
            small_split_warning({name: len(split) for name, split in splits.items()}),
        )
        if message is not None
    ]
    for message in warnings:
        logger.warning("%s", message)
    return warnings


def _choose_max_length(cfg: DataConfig, train_ids: list[list[int]]) -> tuple[int, str]:
    if cfg.max_length is not None:
        return cfg.max_length, "data.max_length"
    lengths = [len(ids) for ids in train_ids]
    chosen = auto_max_length(lengths, cfg.max_length_quantile, cfg.max_length_cap)
    return chosen, (
        f"the {cfg.max_length_quantile:g} quantile of train token lengths, "
        f"rounded up to a multiple of 8, capped at {cfg.max_length_cap}"
    )


def encode_examples(
    examples: Sequence[Example], tokenizer: Tokenizer, labels: Sequence[str], max_length: int, source: str = "the data"
) -> EncodedSplit:
    """Encode examples with an existing tokenizer and label mapping (e.g. to evaluate a run on a new file).

    Args:
        examples: usable examples (see :func:`~attncoach.data.sources.read_examples`).
        tokenizer: the run's tokenizer.
        labels: the run's label names in class-id order.
        max_length: the run's max_length.
        source: how to name the data in messages.

    Raises:
        AttncoachError: a label that is not in ``labels``, naming it and its line.
    """
    check_labels(examples, labels, source)
    return _encoded_split(examples, encode_texts(tokenizer, [e.text for e in examples], max_length), labels)


def _encoded_split(examples: Sequence[Example], ids: list[list[int]], labels: Sequence[str]) -> EncodedSplit:
    class_id = {name: index for index, name in enumerate(labels)}
    return EncodedSplit(
        ids=ids,
        labels=np.array([class_id[e.label] for e in examples], dtype=np.int64),
        texts=[e.text for e in examples],
        lines=[e.line for e in examples],
        groups=[e.group for e in examples] if any(e.group is not None for e in examples) else [],
    )


def label_names(examples: Sequence[Example]) -> list[str]:
    """The distinct labels, sorted; numerically when every label is an integer ("2" before "10")."""
    names = {e.label for e in examples}
    if all(_is_integer(name) for name in names):
        return sorted(names, key=lambda name: (int(name), name))
    return sorted(names)


def _is_integer(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def check_labels(examples: Sequence[Example], labels: Sequence[str], source: str) -> None:
    """Refuse the first example whose label is not in ``labels``.

    Raises:
        AttncoachError: naming the label, its line and the known labels.
    """
    known = set(labels)
    for example in examples:
        if example.label not in known:
            raise AttncoachError(
                f"label '{shorten(example.label)}' on line {example.line} of {source} is not one of "
                f"the labels {', '.join(shorten(name) for name in labels)}"
            )
