"""TextStream: texts read lazily from .txt, CSV, TSV, JSONL and JSON files, with clear errors."""

from __future__ import annotations

import json

import pytest

from attncoach.data.stream import TextStream, batched
from attncoach.errors import AttncoachError


def test_a_text_file_streams_one_text_per_line_skipping_blank_ones(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes("\ufefffirst\r\nsecond\n\n   \nthird".encode())
    stream = TextStream(path)
    assert stream.position == 0 and stream.size == path.stat().st_size
    assert list(stream) == ["first", "second", "third"]  # the byte order mark and "\r" are gone
    assert stream.position == stream.size


def test_a_jsonl_file_keeps_unicode_line_separators_inside_texts(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"text": "a\u2028b"}, ensure_ascii=False) + "\n" + json.dumps({"text": None}) + "\n")
    assert list(TextStream(path)) == ["a\u2028b"]  # a null text is blank: skipped


def test_csv_quoted_fields_may_hold_newlines(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text('id,text\n1,"two\nlines"\n2,plain\n', encoding="utf-8")
    assert list(TextStream(path)) == ["two\nlines", "plain"]


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("in.csv", "id,body\n1,x\n", "has no column 'text' (columns: id, body); set --text-column"),
        ("in.jsonl", '{"text": "x"}\n[1]\n', "line 2 is not a JSON object"),
        ("in.jsonl", '{"body": "x"}\n', "line 1 has no field 'text'"),
    ],
)
def test_bad_content_is_one_line_naming_where(tmp_path, name, content, words):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(AttncoachError) as err:
        list(TextStream(path))
    assert words in str(err.value) and "\n" not in str(err.value)


def test_a_missing_file_or_an_unknown_encoding_is_refused_before_reading(tmp_path):
    with pytest.raises(AttncoachError, match="not found"):
        TextStream(tmp_path / "nope.txt")
    (tmp_path / "in.txt").write_text("x")
    with pytest.raises(AttncoachError, match="--encoding 'klingon' is not a known text encoding"):
        TextStream(tmp_path / "in.txt", encoding="klingon")


def test_batched_keeps_order_and_ends_short():
    assert list(batched(iter(range(7)), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched([], 3)) == []
