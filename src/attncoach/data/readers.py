"""Readers for CSV, TSV and JSONL data files (a JSONL or .json file may also hold one JSON array).

Every reader turns a file into a list of :class:`~attncoach.data.example.Example`, keeping
the line where each row starts so that any later problem can name it. Problems with the
file (missing, undecodable, malformed, without the configured columns) are raised as
:class:`~attncoach.errors.AttncoachError` with one line.

Example:
    >>> rows = read_table(Path("tweets.csv"), None, "utf-8", Columns("text", "label"))
    >>> rows[0].line  # the header is line 1
    2
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from attncoach.data.example import Example
from attncoach.errors import AttncoachError

FORMATS = ("csv", "tsv", "jsonl")
_FORMAT_OF_SUFFIX = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".json-lines": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",  # the JSONL reader also reads a JSON array of objects
}
_DATA_SUFFIXES = (*_FORMAT_OF_SUFFIX, ".inter", ".data")
_SHOWN_CHARS = 60
_SPLIT_OF_VALUE = {"train": "train", "val": "val", "validation": "val", "dev": "val", "test": "test"}


@dataclass(frozen=True)
class Columns:
    """Which columns (CSV/TSV) or keys (JSONL) hold the text, the label, the split and the group."""

    text: str = "text"
    label: str = "label"
    split: Optional[str] = None
    group: Optional[str] = None


def format_of(
    path: Path,
    fmt: Optional[str],
    formats: tuple[str, ...] = FORMATS,
    suffixes: Optional[dict[str, str]] = None,
    what: str = "data",
    key: str = "data.format",
) -> str:
    """The file format: ``fmt`` when given, else guessed from the suffix.

    Args:
        formats, suffixes: the formats a reader knows and the suffixes that name them
            (default: the labelled-text formats).
        what, key: how messages name the file and the setting that chooses the format.

    Raises:
        AttncoachError: an unknown format or suffix.
    """
    suffixes = _FORMAT_OF_SUFFIX if suffixes is None else suffixes
    if fmt is not None:
        if fmt not in formats:
            raise AttncoachError(f"unknown {what} format '{fmt}' (known: {', '.join(formats)})")
        return fmt
    suffix = path.suffix.lower()
    if suffix not in suffixes:
        raise AttncoachError(
            f"cannot tell the format of {what} file {path} from its suffix '{suffix}'; "
            f"set {key} to one of {', '.join(formats)}"
        )
    return suffixes[suffix]


def read_table(path: Path, fmt: Optional[str], encoding: str, columns: Columns) -> list[Example]:
    """Read every row of a CSV, TSV or JSONL file, blank ones included.

    Args:
        path: the data file.
        fmt: "csv", "tsv" or "jsonl" (one object per line, or one JSON array of objects);
            None to guess from the suffix (.json reads as jsonl).
        encoding: the text encoding of the file.
        columns: the names of the text, label and (optional) split and group columns.

    Returns:
        One example per row, in file order. Labels are stripped; texts are kept as read.

    Raises:
        AttncoachError: a missing, unreadable, undecodable or malformed file, a missing
            column, a bad split value, or a file without rows.
    """
    require_file(path)
    fmt = format_of(path, fmt)
    text = read_text(path, encoding)
    examples = _READERS[fmt](text, path, columns)
    if not examples:
        raise AttncoachError(f"data file {path} has no rows")
    return examples


def column_names(path: Path, fmt: Optional[str], encoding: str) -> list[str]:
    """The columns of a CSV/TSV file's header, or the keys found in a JSONL file, in first-seen order.

    Raises:
        AttncoachError: as :func:`read_table`, for a file that cannot be read or parsed.
    """
    require_file(path)
    fmt = format_of(path, fmt)
    text = read_text(path, encoding)
    if fmt == "jsonl":
        return list(dict.fromkeys(key for _, obj in json_objects(text, path) for key in obj))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if fmt == "tsv" else ",")
    header = next(rows_with_lines(reader, path), None)
    return [] if header is None else [name.strip() for name in header[1]]


def read_text(path: Path, encoding: str) -> str:
    """Decode a whole file strictly, naming the line of the first undecodable byte.

    Raises:
        AttncoachError: a missing file, a directory, an unknown encoding or bad bytes.
    """
    require_file(path)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise AttncoachError(f"data.encoding '{encoding}' is not a known text encoding") from None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AttncoachError(f"cannot read data file {path}: {exc.strerror}") from None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = _line_of_offset(data, exc.start, encoding)
        raise AttncoachError(f"{path}: line {line} is not valid {encoding} (set data.encoding)") from None
    return text.removeprefix("\ufeff")


def require_file(path: Path) -> None:
    """Refuse a path that does not exist or is a directory (naming a data file inside it).

    Raises:
        AttncoachError: one line saying which, and that a file is needed.
    """
    if not path.exists():
        raise AttncoachError(f"data file not found: {path}")
    if path.is_dir():
        try:
            inside = sorted(p.name for p in path.iterdir() if p.is_file() and p.suffix.lower() in _DATA_SUFFIXES)
        except OSError:
            inside = []
        example = f" such as {path / inside[0]}" if inside else ""
        raise AttncoachError(f"data path {path} is a directory; data.path must name a data file{example}")


def shorten(value: str, limit: int = _SHOWN_CHARS) -> str:
    r"""``value`` fit for a one-line message: control characters escaped, cut to ``limit`` with "…".

    Example:
        >>> print(shorten("a\nb" + "x" * 100, limit=10))
        a\nbxxxxx…
    """
    shown = "".join(repr(ch)[1:-1] if unicodedata.category(ch) == "Cc" else ch for ch in value)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def looks_garbled(names: list[str]) -> bool:
    """Whether header names look like text decoded with the wrong encoding.

    Signs: NUL or other control characters, U+FFFD, or a name longer than any real header
    (a file decoded wrongly often has no line break left, so the first name is the file).
    """
    return any(len(name) > 200 or _has_garbled_characters(name) for name in names)


def _has_garbled_characters(text: str) -> bool:
    """Control characters other than tab and line ends (NULs of UTF-16 read as latin-1), or U+FFFD."""
    return "\ufffd" in text or any(unicodedata.category(ch) == "Cc" and ch not in "\t\r\n" for ch in text)


def _line_of_offset(data: bytes, offset: int, encoding: str) -> int:
    """The 1-based line holding byte ``offset``; everything before it decodes cleanly."""
    try:
        return data[:offset].decode(encoding).count("\n") + 1
    except UnicodeDecodeError:
        return data.count(b"\n", 0, offset) + 1


def _read_csv(text: str, path: Path, columns: Columns) -> list[Example]:
    return _read_delimited(text, path, columns, delimiter=",")


def _read_tsv(text: str, path: Path, columns: Columns) -> list[Example]:
    return _read_delimited(text, path, columns, delimiter="\t")


def _read_delimited(text: str, path: Path, columns: Columns, delimiter: str) -> list[Example]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = rows_with_lines(reader, path)
    header = next(rows, None)
    if header is None:
        raise AttncoachError(f"data file {path} has no rows")
    names = [name.strip() for name in header[1]]
    text_at = _column_index(names, columns.text, "data.text_column", path)
    label_at = _column_index(names, columns.label, "data.label_column", path)
    split_at = None if columns.split is None else _column_index(names, columns.split, "data.split_column", path)
    group_at = None if columns.group is None else _column_index(names, columns.group, "data.group_column", path)
    examples = []
    for line, row in rows:
        split = None if split_at is None else split_name(_cell(row, split_at), line, path)
        group = None if group_at is None else _cell(row, group_at).strip()
        examples.append(Example(_cell(row, text_at), _cell(row, label_at).strip(), split, line, group))
    return examples


def rows_with_lines(reader: Any, path: Path, skip_blank: bool = False) -> Iterator[tuple[int, list[str]]]:
    """Yield (first line, cells) for every non-empty record; a quoted cell may span lines.

    ``skip_blank`` also skips records whose cells are all blank.
    """
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise AttncoachError(f"{path}: line {reader.line_num} is not valid CSV ({exc})") from None
        if row and (not skip_blank or any(cell.strip() for cell in row)):  # csv yields [] for an empty line
            yield start, row


def _cell(row: list[str], index: int) -> str:
    return row[index] if index < len(row) else ""


def _column_index(names: list[str], name: str, key: str, path: Path) -> int:
    if name not in names:
        raise _missing_column(path, name, names, key)
    return names.index(name)


def _missing_column(path: Path, name: str, names: list[str], key: str) -> AttncoachError:
    shown = ", ".join(shorten(n) for n in names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    hint = f"set {key}"
    if looks_garbled(names):
        hint = f"the header looks garbled: is data.encoding right? (or {hint})"
    return AttncoachError(f"data file {path} has no column '{shorten(name)}' (columns: {shown}); {hint}")


def _read_jsonl(text: str, path: Path, columns: Columns) -> list[Example]:
    records = list(json_objects(text, path))
    if not records:
        raise AttncoachError(f"data file {path} has no rows")
    keys = list(dict.fromkeys(key for _, obj in records for key in obj))
    for name, key in (
        (columns.text, "data.text_column"),
        (columns.label, "data.label_column"),
        (columns.split, "data.split_column"),
        (columns.group, "data.group_column"),
    ):
        if name is not None and name not in keys:
            raise _missing_column(path, name, keys, key)
    return [_json_example(obj, line, path, columns) for line, obj in records]


def json_objects(text: str, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, object) for every JSONL line, or for every element of a file holding one JSON array."""
    if text.lstrip().startswith("["):
        yield from _json_array_objects(text, path)
        return
    first = True
    # Split on "\n" only: str.splitlines() would also split on U+2028, which JSON allows in strings.
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            hint = _first_line_hint(text, raw) if first else ""
            raise AttncoachError(f"{path}: line {number} is not valid JSON ({exc.msg}){hint}") from None
        if not isinstance(obj, dict):
            raise AttncoachError(f"{path}: line {number} is not a JSON object (got {type(obj).__name__})")
        first = False
        yield number, obj


def _first_line_hint(text: str, line: str) -> str:
    """Why a file's first line may not parse: the file is one JSON object, or the encoding is wrong."""
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):
        return "; the file holds one JSON object, but data files hold one object per line or a JSON array of them"
    if _has_garbled_characters(line) or (len(line) > 200 and '"' not in line):  # a JSON object has quoted keys
        return "; the line looks garbled: is data.encoding right?"
    return ""


def _json_array_objects(text: str, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """The elements of a file holding one JSON array, each with the line where it starts."""
    try:
        elements = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AttncoachError(f"{path}: line {exc.lineno} is not valid JSON ({exc.msg})") from None
    decoder = json.JSONDecoder()
    at, line, counted = text.index("[") + 1, 1, 0
    for index in range(len(elements)):
        at = _skip_json_space(text, at)
        line, counted = line + text.count("\n", counted, at), at
        obj, at = decoder.raw_decode(text, at)  # the text parsed above: no error here
        if not isinstance(obj, dict):
            raise AttncoachError(
                f"{path}: array element {index + 1} (line {line}) is not a JSON object (got {type(obj).__name__})"
            )
        yield line, obj
        at = _skip_json_space(text, at) + 1  # past the "," (or the closing "]")


def _skip_json_space(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return at


def _json_example(obj: dict[str, Any], line: int, path: Path, columns: Columns) -> Example:
    text = _json_scalar(obj.get(columns.text), columns.text, line, path)
    label = _json_scalar(obj.get(columns.label), columns.label, line, path).strip()
    split = None
    if columns.split is not None:
        split = split_name(_json_scalar(obj.get(columns.split), columns.split, line, path), line, path)
    group = None if columns.group is None else _json_scalar(obj.get(columns.group), columns.group, line, path).strip()
    return Example(text, label, split, line, group)


def _json_scalar(value: Any, key: str, line: int, path: Path) -> str:
    """A JSON value as text: null -> "", 3 and 3.0 -> "3", true -> "true"."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    raise AttncoachError(f"{path}: line {line}: '{key}' must be a string or a number, not {type(value).__name__}")


def split_name(value: str, line: int, path: Path | str) -> str:
    """Map a split cell to "train", "val" or "test" (validation and dev mean val).

    Raises:
        AttncoachError: any other value, naming the line.
    """
    name = _SPLIT_OF_VALUE.get(value.strip().lower())
    if name is None:
        raise AttncoachError(
            f"{path}: line {line} has split '{shorten(value)}'; use train, val (or validation, dev) or test"
        )
    return name


_READERS: dict[str, Callable[[str, Path, Columns], list[Example]]] = {
    "csv": _read_csv,
    "tsv": _read_tsv,
    "jsonl": _read_jsonl,
}
