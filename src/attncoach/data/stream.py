"""Texts read lazily from a file of any size: the input of ``attncoach predict --input``.

:class:`TextStream` yields the texts of a ``.txt`` file (one per line) or of the text column of
a CSV, TSV or JSONL file one at a time, so that a file of millions of lines is predicted in
constant memory. Blank texts are skipped. ``position`` and ``size`` (bytes read, file size)
drive a progress bar. A ``.json`` file holding one JSON array is the exception: it is parsed
whole (JSON arrays have no line structure to stream).

Example:
    >>> stream = TextStream(Path("tickets.csv"), column="body")  # doctest: +SKIP
    >>> for texts in batched(stream, 256): ...                    # doctest: +SKIP
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from attncoach.data.readers import json_objects, read_text, require_file
from attncoach.errors import AttncoachError

_JSON_LINES = (".jsonl", ".json-lines", ".ndjson")
_DELIMITERS = {".csv": ",", ".tsv": "\t"}


class TextStream:
    """The texts of one input file, read lazily (see the module doc).

    Args:
        path: a ``.txt`` file (one text per line; any other suffix too), ``.csv`` / ``.tsv``
            with a header, ``.jsonl`` (one object per line) or ``.json`` (one array of objects).
        encoding: the file's text encoding (a UTF-8 byte order mark is dropped).
        column: the text column (field) of a CSV, TSV or JSON file.

    Raises:
        AttncoachError: a missing file, an unknown encoding; while reading: bad bytes, a
            missing column, a line that is not a JSON object (each names the line).
    """

    def __init__(self, path: Path, encoding: str = "utf-8", column: str = "text") -> None:
        require_file(path)
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise AttncoachError(f"--encoding '{encoding}' is not a known text encoding") from None
        self.path = path
        self.encoding = encoding
        self.column = column
        self.suffix = path.suffix.lower()
        self.size = path.stat().st_size
        self._raw: BinaryIO | None = None
        self._read_whole = False  # a JSON array, read at once
        self._line = 0  # the line last read (1-based), for messages

    @property
    def position(self) -> int:
        """Bytes of the file read so far (read ahead in chunks: a progress bar's measure)."""
        if self._read_whole:
            return self.size
        if self._raw is None:
            return 0
        return self.size if self._raw.closed else self._raw.tell()

    @property
    def line(self) -> int:
        """The source line of the text last read (1-based; 0 in a JSON array, which has no lines)."""
        return self._line

    def __iter__(self) -> Iterator[str]:
        if self.suffix == ".json":  # one JSON array: no lines to stream
            objects = json_objects(read_text(self.path, self.encoding), self.path)
            self._read_whole = True
            yield from _nonblank(self._field(obj, line) for line, obj in objects)
            return
        encoding = "utf-8-sig" if codecs.lookup(self.encoding).name == "utf-8" else self.encoding
        try:
            self._raw = open(self.path, "rb")  # noqa: SIM115 (closed in finally: a generator's with would hide it)
        except OSError as exc:
            raise AttncoachError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            text = io.TextIOWrapper(self._raw, encoding=encoding, errors="strict", newline="")
            yield from _nonblank(self._decoded(self._texts(text)))
        finally:
            self._raw.close()

    def _texts(self, text: io.TextIOWrapper) -> Iterator[str]:
        if self.suffix in _DELIMITERS:
            return self._delimited(text, _DELIMITERS[self.suffix])
        if self.suffix in _JSON_LINES:
            return self._json_lines(text)
        return self._lines(text)

    def _decoded(self, texts: Iterator[str]) -> Iterator[str]:
        """``texts``, with bad bytes turned into one line naming where they are."""
        try:
            yield from texts
        except UnicodeDecodeError:
            line = _first_bad_line(self.path, self.encoding)
            raise AttncoachError(f"{self.path}: line {line} is not valid {self.encoding} (set --encoding)") from None

    def _lines(self, text: io.TextIOWrapper) -> Iterator[str]:
        for self._line, line in enumerate(text, start=1):
            yield line.rstrip("\r\n")

    def _delimited(self, text: io.TextIOWrapper, delimiter: str) -> Iterator[str]:
        reader = csv.reader(text, delimiter=delimiter)
        try:
            header = next(reader, None)
            if header is None or self.column not in header:
                raise AttncoachError(
                    f"{self.path} has no column '{self.column}' (columns: {', '.join(header or [])}); set --text-column"
                )
            index = header.index(self.column)
            for row in reader:
                self._line = reader.line_num
                if row:
                    yield row[index] if index < len(row) else ""
        except csv.Error as exc:
            raise AttncoachError(
                f"{self.path}: line {reader.line_num} is not valid {self.suffix[1:].upper()} ({exc})"
            ) from None

    def _json_lines(self, text: io.TextIOWrapper) -> Iterator[str]:
        # Read by "\n" only: iterating the file would also split at U+2028, which JSON allows in strings.
        for self._line, raw in enumerate(_split_newlines(text), start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise AttncoachError(f"{self.path}: line {self._line} is not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise AttncoachError(f"{self.path}: line {self._line} is not a JSON object (got {type(obj).__name__})")
            yield self._field(obj, self._line)

    def _field(self, obj: dict[str, Any], line: int) -> str:
        if self.column not in obj:
            raise AttncoachError(f"{self.path}: line {line} has no field '{self.column}'; set --text-column")
        value = obj[self.column]
        return "" if value is None else str(value)


def _first_bad_line(path: Path, encoding: str) -> int:
    """The number of the first line holding bytes that are not valid ``encoding`` (read again, in binary)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    number = 0
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                decoder.decode(raw)
            except UnicodeDecodeError:
                return number
    return number  # the file ends inside a character


def _split_newlines(text: io.TextIOWrapper, chunk: int = 1 << 16) -> Iterator[str]:
    """The lines of ``text`` split at "\\n" only, read in chunks."""
    rest = ""
    while block := text.read(chunk):
        *lines, rest = (rest + block).split("\n")
        yield from lines
    if rest:
        yield rest


def _nonblank(texts: Iterable[str]) -> Iterator[str]:
    return (t for t in texts if t.strip())


def batched(items: Iterable[str], size: int) -> Iterator[list[str]]:
    """Consecutive lists of ``size`` items (the last one shorter).

    Example:
        >>> list(batched("abcde", 2))
        [['a', 'b'], ['c', 'd'], ['e']]
    """
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
