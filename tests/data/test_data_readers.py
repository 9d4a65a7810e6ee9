"""CSV, TSV and JSONL readers: rows, lines, columns, splits and every bad input."""

from __future__ import annotations

import pytest

from attncoach.data.readers import Columns, column_names, format_of, read_table
from attncoach.errors import AttncoachError

COLUMNS = Columns("text", "label")
SPLIT_COLUMNS = Columns("text", "label", "part")


def test_csv_rows_labels_and_lines(write_file):
    path = write_file("d.csv", 'text,label\nhello there,pos\n"a, quoted\nmultiline text",neg\n\nlast, one , neu \n')
    rows = read_table(path, None, "utf-8", COLUMNS)
    assert [(r.text, r.label, r.split, r.line) for r in rows] == [
        ("hello there", "pos", None, 2),
        ("a, quoted\nmultiline text", "neg", None, 3),
        ("last", "one", None, 6),
    ]


def test_csv_columns_in_any_order_with_split(write_file):
    path = write_file("d.csv", "id,part,label,text\n1,train,pos,a\n2,Validation,neg,b\n3,DEV,neg,c\n4, test ,pos,d\n")
    rows = read_table(path, None, "utf-8", SPLIT_COLUMNS)
    assert [(r.text, r.label, r.split) for r in rows] == [
        ("a", "pos", "train"),
        ("b", "neg", "val"),
        ("c", "neg", "val"),
        ("d", "pos", "test"),
    ]


def test_tsv_rows_with_and_without_split(write_file):
    path = write_file("d.tsv", "text\tlabel\tpart\nhi, you\tpos\ttrain\nbye\tneg\ttest\n")
    rows = read_table(path, None, "utf-8", COLUMNS)
    assert [(r.text, r.label, r.split, r.line) for r in rows] == [("hi, you", "pos", None, 2), ("bye", "neg", None, 3)]
    rows = read_table(path, None, "utf-8", SPLIT_COLUMNS)
    assert [r.split for r in rows] == ["train", "test"]


def test_jsonl_rows_labels_as_str_and_split(write_file):
    path = write_file(
        "d.jsonl",
        '{"text": "a", "label": 1, "part": "train"}\n\n'
        '{"text": "b", "label": "neg", "part": "val"}\n'
        '{"text": "c", "label": 2.0, "part": "test"}\n',
    )
    rows = read_table(path, None, "utf-8", SPLIT_COLUMNS)
    assert [(r.text, r.label, r.split, r.line) for r in rows] == [
        ("a", "1", "train", 1),
        ("b", "neg", "val", 3),
        ("c", "2", "test", 4),
    ]
    assert [r.split for r in read_table(path, None, "utf-8", COLUMNS)] == [None, None, None]


def test_jsonl_null_or_missing_values_read_as_blank(write_file):
    path = write_file("d.json-lines", '{"text": "a", "label": null}\n{"text": "b"}\n{"label": "x"}\n')
    rows = read_table(path, None, "utf-8", COLUMNS)
    assert [(r.text, r.label) for r in rows] == [("a", ""), ("b", ""), ("", "x")]


def test_format_option_overrides_suffix(write_file):
    path = write_file("d.txt", "text\tlabel\nx\ty\n")
    assert read_table(path, "tsv", "utf-8", COLUMNS)[0].label == "y"


def test_utf8_bom_is_ignored(write_file):
    path = write_file("d.csv", "\ufefftext,label\nx,y\n")
    assert read_table(path, None, "utf-8", COLUMNS)[0].text == "x"


def test_other_encoding(write_file):
    path = write_file("d.csv", "text,label\ncafé,pos\n", encoding="latin-1")
    assert read_table(path, None, "latin-1", COLUMNS)[0].text == "café"


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".json-lines", ".json"])
def test_format_of_known_suffixes(tmp_path, suffix):
    assert format_of(tmp_path / f"d{suffix.upper()}", None) in ("csv", "tsv", "jsonl")


def expect_error(path, words, columns=COLUMNS, fmt=None, encoding="utf-8"):
    with pytest.raises(AttncoachError) as info:
        read_table(path, fmt, encoding, columns)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
    return message


def test_unknown_suffix_lists_formats(write_file):
    expect_error(write_file("d.txt", "text,label\nx,y\n"), ["'.txt'", "csv, tsv, jsonl", "data.format"])


def test_unknown_format_lists_formats(write_file):
    expect_error(write_file("d.csv", "text,label\nx,y\n"), ["'xml'", "csv, tsv, jsonl"], fmt="xml")


def test_missing_file(tmp_path):
    expect_error(tmp_path / "nope.csv", [f"data file not found: {tmp_path / 'nope.csv'}"])


def test_directory(tmp_path):
    (tmp_path / "d.csv").mkdir()
    expect_error(tmp_path / "d.csv", ["is a directory"])


def test_directory_without_a_format_suffix_says_a_file_is_needed(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("x")
    (data / "train.csv").write_text("text,label\nx,y\n")
    message = expect_error(data, [f"data path {data} is a directory", "data.path must name a data file"])
    assert f"such as {data / 'train.csv'}" in message and "cannot tell the format" not in message


def test_wrong_encoding_shows_a_short_header_and_suggests_the_encoding(write_file):
    body = "text,label\n" + "some words,pos\n" * 1000 + "x"  # an even number of bytes: decodes as UTF-16
    message = expect_error(write_file("d.csv", body), ["has no column 'text'", "data.encoding"], encoding="utf-16")
    assert len(message) < 300 and "…" in message


def test_utf16_file_read_as_latin1_suggests_the_encoding(write_file):
    path = write_file("d.tsv", "text\tlabel\nx\ty\n", encoding="utf-16")
    message = expect_error(path, ["has no column 'text'", "is data.encoding right?"], encoding="latin-1")
    assert "\\x00" in message  # the NULs shown escaped, not raw


def test_a_real_missing_column_does_not_blame_the_encoding(write_file):
    message = expect_error(write_file("d.csv", "sentence,label\nx,y\n"), ["set data.text_column"])
    assert "encoding" not in message


def test_long_split_value_is_cut(write_file):
    path = write_file("d.csv", "text,label,part\na,x," + "q" * 10_000 + "\n")
    message = expect_error(path, ["line 2 has split 'qqq", "…'"], columns=SPLIT_COLUMNS)
    assert len(message) < 200


def test_json_array_reads_like_jsonl(write_file):
    path = write_file(
        "d.json",
        '[\n  {"text": "a", "label": 1, "part": "train"},\n\n  {"text": "b", "label": "neg",\n'
        '   "part": "val"}, {"text": "c", "label": 2.0, "part": "test"}\n]\n',
    )
    rows = read_table(path, None, "utf-8", SPLIT_COLUMNS)
    assert [(r.text, r.label, r.split, r.line) for r in rows] == [
        ("a", "1", "train", 2),
        ("b", "neg", "val", 4),
        ("c", "2", "test", 5),
    ]


def test_jsonl_file_holding_one_json_array_on_one_line(write_file):
    path = write_file("d.jsonl", '\ufeff[{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]\r\n')
    assert [(r.text, r.label, r.line) for r in read_table(path, None, "utf-8", COLUMNS)] == [
        ("a", "x", 1),
        ("b", "y", 1),
    ]


@pytest.mark.parametrize(
    "content,words",
    [
        ("[]", ["has no rows"]),
        ('[{"sentence": "a", "label": "x"}]', ["has no column 'text'", "columns: sentence, label"]),
        ('[{"text": "a", "label": "x"},\n "b"]', ["array element 2 (line 2) is not a JSON object (got str)"]),
        ('[{"text": "a", "label": "x"},\n {"text": }]', ["line 2 is not valid JSON"]),
        ('[{"text": "a", "label": "x"},\n]', ["line 2 is not valid JSON"]),
        ('[{"text": ["a"], "label": "x"}]', ["line 1", "'text'", "string or a number"]),
        ('[{"text": "a", "label": "x", "part": "holdout"}]', ["line 1 has split 'holdout'"]),
    ],
)
def test_bad_json_arrays(write_file, content, words):
    expect_error(write_file("d.json", content), words, columns=SPLIT_COLUMNS if "part" in content else COLUMNS)


def test_json_file_with_one_object_says_so(write_file):
    path = write_file("d.json", '{\n  "rows": [{"text": "a", "label": "x"}]\n}\n')
    expect_error(path, ["line 1 is not valid JSON", "holds one JSON object", "JSON array"])


@pytest.mark.parametrize(
    "name,content",
    [
        ("empty.csv", ""),
        ("header.csv", "text,label\n"),
        ("blank.tsv", "\n\n"),
        ("empty.jsonl", "\n  \n"),
    ],
)
def test_no_rows(write_file, name, content):
    path = write_file(name, content)
    expect_error(path, [f"data file {path} has no rows"])


def test_missing_text_column_lists_columns(write_file):
    path = write_file("d.csv", "sentence,label\nx,y\n")
    expect_error(path, [f"data file {path} has no column 'text' (columns: sentence, label)", "data.text_column"])


def test_missing_label_column(write_file):
    expect_error(write_file("d.tsv", "text\tstars\nx\t5\n"), ["has no column 'label'", "columns: text, stars"])


def test_missing_split_column(write_file):
    expect_error(
        write_file("d.csv", "text,label\nx,y\n"), ["has no column 'part'", "data.split_column"], columns=SPLIT_COLUMNS
    )


def test_missing_jsonl_key_lists_keys(write_file):
    expect_error(
        write_file("d.jsonl", '{"sentence": "x", "label": 1}\n{"label": 2, "id": 3}\n'),
        ["has no column 'text'", "columns: sentence, label, id"],
    )


def test_invalid_utf8_names_its_line(write_file):
    path = write_file("d.csv", b"text,label\nfine,pos\nalso fine,neg\nbad \xff byte,pos\nok,neg\n")
    expect_error(path, [f"{path}: line 4 is not valid utf-8", "data.encoding"])


def test_invalid_utf8_inside_multibyte_character(write_file):
    path = write_file("d.jsonl", '{"text": "café", "label": "a"}\n'.encode() + b'{"text": "\xc3(", "label": "b"}\n')
    expect_error(path, ["line 2 is not valid utf-8"])


def test_unknown_encoding(write_file):
    expect_error(write_file("d.csv", "text,label\nx,y\n"), ["'klingon'", "encoding"], encoding="klingon")


def test_malformed_jsonl_line(write_file):
    path = write_file("d.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": }\n{"text": "c"}\n')
    expect_error(path, [f"{path}: line 2 is not valid JSON"])


def test_jsonl_line_that_is_not_an_object(write_file):
    path = write_file("d.jsonl", '{"text": "a", "label": "x"}\n\n["b", "y"]\n')
    expect_error(path, ["line 3 is not a JSON object", "list"])


def test_jsonl_text_that_is_not_a_scalar(write_file):
    expect_error(write_file("d.jsonl", '{"text": ["a"], "label": "x"}\n'), ["line 1", "'text'", "string or a number"])


@pytest.mark.parametrize(
    "name,content,line",
    [
        ("d.csv", "text,label,part\na,x,train\nb,y,holdout\n", 3),
        ("d.tsv", "text\tlabel\tpart\na\tx\ttrain\nb\ty\ttest\nc\tz\t\n", 4),
        ("d.jsonl", '{"text": "a", "label": "x", "part": "train"}\n{"text": "b", "label": "y", "part": 7}\n', 2),
    ],
)
def test_bad_split_value_names_its_line(write_file, name, content, line):
    path = write_file(name, content)
    expect_error(path, [f"{path}: line {line} has split", "train, val", "test"], columns=SPLIT_COLUMNS)


def test_jsonl_in_the_wrong_encoding_suggests_the_encoding(write_file):
    body = '{"text": "some words", "label": "pos"}\n' * 300  # an even number of bytes: decodes as UTF-16
    message = expect_error(
        write_file("d.jsonl", body), ["line 1 is not valid JSON", "data.encoding"], encoding="utf-16"
    )
    assert len(message) < 200


def test_a_long_jsonl_line_with_a_syntax_error_does_not_blame_the_encoding(write_file):
    path = write_file("d.jsonl", '{"text": "' + "word " * 100 + '", "label": }\n')
    message = expect_error(path, ["line 1 is not valid JSON"])
    assert "encoding" not in message


def test_group_column_is_kept_per_row_in_csv_and_jsonl(write_file):
    columns = Columns("text", "label", group="source")
    csv_path = write_file("d.csv", "source,text,label\n news ,a,pos\n,b,neg\nshop,c,pos\n")
    assert [(r.text, r.group) for r in read_table(csv_path, None, "utf-8", columns)] == [
        ("a", "news"),
        ("b", ""),
        ("c", "shop"),
    ]
    jsonl = write_file("d.jsonl", '{"text": "a", "label": 1, "source": 7}\n{"text": "b", "label": 0}\n')
    assert [r.group for r in read_table(jsonl, None, "utf-8", columns)] == ["7", ""]
    assert [r.group for r in read_table(jsonl, None, "utf-8", COLUMNS)] == [None, None]


@pytest.mark.parametrize("name", ["d.csv", "d.jsonl"])
def test_missing_group_column_names_the_key(write_file, name):
    content = "text,label\na,pos\n" if name.endswith(".csv") else '{"text": "a", "label": "pos"}\n'
    path = write_file(name, content)
    with pytest.raises(AttncoachError, match="has no column 'domain'.*set data.group_column"):
        read_table(path, None, "utf-8", Columns("text", "label", group="domain"))


def test_column_names_of_each_format(write_file):
    assert column_names(write_file("d.csv", " text ,label,src\na,b,c\n"), None, "utf-8") == ["text", "label", "src"]
    assert column_names(write_file("d.tsv", "text\tlabel\nx\ty\n"), None, "utf-8") == ["text", "label"]
    jsonl = write_file("d.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "src": "x"}\n')
    assert column_names(jsonl, None, "utf-8") == ["text", "label", "src"]
