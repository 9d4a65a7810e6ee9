"""Read a run's examples from the configured source: a data file or a built-in corpus.

Example:
    >>> examples = read_examples(DataConfig(path="reviews.csv", label_column="stars"))
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from attncoach.config import DataConfig
from attncoach.data.builtin import DEFAULT_BUILTIN, load_builtin
from attncoach.data.example import Example
from attncoach.data.readers import Columns, read_table
from attncoach.errors import AttncoachError

logger = logging.getLogger("attncoach")


@dataclass(frozen=True)
class DroppedRows:
    """How many rows were unusable, by reason (a row with both problems counts as blank text)."""

    blank_text: int = 0
    no_label: int = 0

    @property
    def total(self) -> int:
        return self.blank_text + self.no_label


def source_name(cfg: DataConfig) -> str:
    """How messages name the configured source: the file path or the built-in corpus."""
    if cfg.path is not None:
        return cfg.path
    return f"the built-in corpus {cfg.builtin or DEFAULT_BUILTIN}"


def read_rows(cfg: DataConfig) -> list[Example]:
    """Every row of the configured source, blank ones included.

    ``cfg.path`` is read with ``cfg.format``, ``cfg.encoding`` and the configured columns;
    otherwise the built-in corpus ``cfg.builtin`` (default tweets-sentiment) is loaded with
    its own columns (it has no group column: ``data.group_column`` is refused with it).

    Raises:
        AttncoachError: any problem with the source (see :func:`read_table`).
    """
    if cfg.path is None:
        if cfg.group_column is not None:
            raise AttncoachError(
                f"data.group_column '{cfg.group_column}' names a column of a data file, and "
                f"{source_name(cfg)} has none; set data.path to a file with that column"
            )
        return load_builtin(cfg.builtin or DEFAULT_BUILTIN)
    columns = Columns(cfg.text_column, cfg.label_column, cfg.split_column, cfg.group_column)
    return read_table(Path(cfg.path), cfg.format, cfg.encoding, columns)


def drop_unusable(examples: list[Example], source: str) -> tuple[list[Example], DroppedRows]:
    """Drop rows with a blank text or without a label, and log how many went.

    Args:
        examples: rows as read.
        source: how to name the source in messages.

    Returns:
        The usable rows and the counts of dropped ones.

    Raises:
        AttncoachError: no usable row remains.
    """
    kept = [e for e in examples if e.text.strip() and e.label]
    blank_text = sum(1 for e in examples if not e.text.strip())
    dropped = DroppedRows(blank_text=blank_text, no_label=len(examples) - len(kept) - blank_text)
    if dropped.total:
        logger.info(
            "dropped %d rows with a blank text and %d rows without a label", dropped.blank_text, dropped.no_label
        )
    if not kept:
        raise AttncoachError(f"no usable rows in {source}: all {len(examples)} rows have a blank text or no label")
    return kept, dropped


def read_examples(cfg: DataConfig) -> list[Example]:
    """The usable examples of the configured source (blank texts and missing labels dropped).

    Args:
        cfg: the data section of the run configuration.

    Returns:
        Examples in source order, each with its source line.

    Raises:
        AttncoachError: a problem with the source, or no usable row in it.
    """
    kept, _ = drop_unusable(read_rows(cfg), source_name(cfg))
    return kept
