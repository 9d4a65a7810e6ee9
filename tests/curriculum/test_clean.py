"""attncoach clean's file: every text reads back whole, whatever line breaks, commas or quotes it holds."""

from __future__ import annotations

import pytest

from attncoach.curriculum.clean import _write
from attncoach.data.readers import Columns, read_table

TEXTS = [
    "@VirginAmerica\rwhere is our luggage",  # a bare CR: split a cleaned tweets file in two rows
    "two\nlines",
    "windows\r\nline",
    'a "quoted", comma',
    "plain",
]


@pytest.mark.parametrize("fmt, suffix", [("csv", ".csv"), ("tsv", ".tsv"), ("jsonl", ".jsonl")])
def test_written_texts_read_back_whole(tmp_path, fmt, suffix):
    out = tmp_path / f"clean{suffix}"
    splits = {"train": [(t, "pos") for t in TEXTS], "val": [("v", "neg")], "test": [("t\rx", "neg")]}
    _write(out, fmt, "text", "label", splits)
    rows = read_table(out, fmt, "utf-8", Columns(split="split"))
    got = [(e.text, e.label, e.split) for e in rows]
    # a CR inside a quoted field may come back as written or as LF; either keeps the row whole
    expected = [(t, "pos", "train") for t in TEXTS] + [("v", "neg", "val"), ("t\rx", "neg", "test")]
    assert len(got) == len(expected)
    for (text, label, split), (want, want_label, want_split) in zip(got, expected):
        assert (label, split) == (want_label, want_split)
        assert text.replace("\r\n", "\n").replace("\r", "\n") == want.replace("\r\n", "\n").replace("\r", "\n")
