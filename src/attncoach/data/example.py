"""The unit every data source produces: one labelled text and where it came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Example:
    """One labelled text read from a data source.

    Attributes:
        text: the raw text, exactly as read (normalisation happens in the tokenizer).
        label: the label name; "" when the row had none (such rows are dropped on reading).
        split: "train", "val" or "test" when the source names a split, else None.
        line: the 1-based line of the source file where the row starts (the CSV/TSV
            header is line 1).
        group: the value of the group column (``data.group_column``: a source, a domain),
            or None when no group column is read.
    """

    text: str
    label: str
    split: Optional[str] = None
    line: int = 0
    group: Optional[str] = None
