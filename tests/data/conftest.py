"""Fixtures for the data tests: small files written into tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

WriteFile = Callable[..., Path]


@pytest.fixture
def write_file(tmp_path: Path) -> WriteFile:
    """Write text (or bytes) to tmp_path/name and return the path."""

    def write(name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_bytes(content.encode(encoding))
        return path

    return write


TWEETS = [
    ("I love this new phone, it is great!", "positive"),
    ("Worst service ever, I hate waiting", "negative"),
    ("The meeting is at 3pm tomorrow", "neutral"),
    ("so happy today @anna thanks for the gift", "positive"),
    ("this is terrible and broken again http://bad.example.com/x", "negative"),
    ("the train leaves from platform 4", "neutral"),
    ("Great game last night, loved it", "positive"),
    ("I hate rainy mondays so much", "negative"),
    ("new update available at www.example.org today", "neutral"),
    ("best coffee in town, love love love", "positive"),
    ("awful food and rude staff &amp; slow", "negative"),
    ("the store opens at nine", "neutral"),
]


@pytest.fixture
def tweets() -> list[tuple[str, str]]:
    """A dozen tweet-like (text, label) pairs, 4 per class."""
    return list(TWEETS)
