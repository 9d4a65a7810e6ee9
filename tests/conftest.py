"""Shared fixtures."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tinydata import make_corpus


@pytest.fixture
def tiny_csv(tmp_path: Path) -> Path:
    """A 240-row CSV with columns text,label."""
    path = tmp_path / "tiny.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(make_corpus())
    return path
