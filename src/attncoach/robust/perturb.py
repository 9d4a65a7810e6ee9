"""Text perturbations that need no downloaded resources: character edits, word dropout, swaps, EDA.

Every function takes the random generator it draws from, so a perturbation is a pure
function of ``(text, rate, seed)``: training augmentation and the robustness report are
reproducible. Words are whitespace-separated tokens; tokens without a letter or digit
(punctuation, emoji) and the stand-in tokens that normalisation writes (``@user``, ``http``) are
never edited.

Example:
    >>> rng = np.random.default_rng(0)
    >>> char_noise("the service was great today", 0.4, rng)  # doctest: +SKIP
    'the servcie was grewt today'
"""

from __future__ import annotations

import string
from collections.abc import Sequence

import numpy as np

CHAR_OPS = ("swap", "insert", "delete", "keyboard")

_ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keyboard_neighbours() -> dict[str, str]:
    """Each key of a QWERTY keyboard and the keys next to it (same row and the rows above and below)."""
    where = {key: (r, c) for r, row in enumerate(_ROWS) for c, key in enumerate(row)}
    near: dict[str, str] = {}
    for key, (r, c) in where.items():
        found = []
        for other, (r2, c2) in where.items():
            if other != key and abs(r - r2) <= 1 and abs(c - c2) <= 1:
                found.append(other)
        near[key] = "".join(found)
    return near


KEYBOARD = _keyboard_neighbours()


def editable(word: str) -> bool:
    """Whether ``word`` is a word a perturbation may edit (has a letter or digit; not a mention, link or hashtag)."""
    if word.startswith(("@", "http", "#")) or len(word) < 2:
        return False
    return any(ch.isalnum() for ch in word)


def _how_many(rate: float, n: int) -> int:
    """Words to perturb: ``rate`` of ``n``, rounded, and at least one when the rate is positive."""
    if rate <= 0 or n == 0:
        return 0
    return min(n, max(1, round(rate * n)))


def edit_word(word: str, op: str, rng: np.random.Generator) -> str:
    """``word`` with one character edit ``op`` (swap, insert, delete, keyboard) at a random letter."""
    letters = [i for i, ch in enumerate(word) if ch.isalnum()]
    if not letters:
        return word
    if op == "swap":
        pairs = [i for i in letters if i + 1 < len(word) and word[i + 1].isalnum() and word[i] != word[i + 1]]
        if not pairs:
            return edit_word(word, "keyboard", rng)
        i = pairs[int(rng.integers(len(pairs)))]
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    i = letters[int(rng.integers(len(letters)))]
    if op == "insert":
        new = string.ascii_lowercase[int(rng.integers(26))]
        return word[: i + 1] + (new.upper() if word[i].isupper() else new) + word[i + 1 :]
    if op == "delete":
        return word[:i] + word[i + 1 :] if len(letters) > 1 else edit_word(word, "keyboard", rng)
    if op == "keyboard":
        options = KEYBOARD.get(word[i].lower())
        if not options:  # a letter off the QWERTY rows (accented, another script): a random letter instead
            options = string.ascii_lowercase.replace(word[i].lower(), "")
        new = options[int(rng.integers(len(options)))]
        return word[:i] + (new.upper() if word[i].isupper() else new) + word[i + 1 :]
    raise ValueError(f"unknown character edit {op!r}: use one of {', '.join(CHAR_OPS)}")


def char_noise(text: str, rate: float, rng: np.random.Generator, ops: Sequence[str] = CHAR_OPS) -> str:
    """``text`` with one character edit (drawn from ``ops``) in ``rate`` of its editable words."""
    words = text.split()
    candidates = [i for i, w in enumerate(words) if editable(w)]
    k = _how_many(rate, len(candidates))
    if k == 0:
        return text
    for i in sorted(rng.choice(len(candidates), size=k, replace=False)):
        at = candidates[int(i)]
        words[at] = edit_word(words[at], ops[int(rng.integers(len(ops)))], rng)
    return " ".join(words)


def word_dropout(text: str, rate: float, rng: np.random.Generator) -> str:
    """``text`` without ``rate`` of its words (one word always stays)."""
    words = text.split()
    k = min(_how_many(rate, len(words)), len(words) - 1)
    if k <= 0:
        return text
    gone = set(int(i) for i in rng.choice(len(words), size=k, replace=False))
    return " ".join(w for i, w in enumerate(words) if i not in gone)


def word_swap(text: str, rate: float, rng: np.random.Generator) -> str:
    """``text`` with ``rate`` of its words swapped with their right-hand neighbour."""
    words = text.split()
    if len(words) < 2:
        return text
    for _ in range(_how_many(rate, len(words) - 1)):
        i = int(rng.integers(len(words) - 1))
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def random_insertion(text: str, rate: float, rng: np.random.Generator, vocabulary: Sequence[str] = ()) -> str:
    """EDA's random insertion: ``rate`` of the word count inserted at random places.

    EDA (Wei & Zou 2019) inserts a WordNet synonym of a random word; with no thesaurus offline,
    the inserted word is a word of ``vocabulary`` when given (e.g. the training texts' words), else
    a word of the text itself.
    """
    words = text.split()
    if not words:
        return text
    pool = vocabulary if len(vocabulary) else words  # no copy: the training vocabulary is large
    for _ in range(_how_many(rate, len(words))):
        new = pool[int(rng.integers(len(pool)))]
        words.insert(int(rng.integers(len(words) + 1)), new)
    return " ".join(words)


def random_deletion(text: str, rate: float, rng: np.random.Generator) -> str:
    """EDA's random deletion: each word deleted with probability ``rate`` (one word always stays)."""
    words = text.split()
    if len(words) < 2:
        return text
    kept = [w for w, u in zip(words, rng.random(len(words))) if u >= rate]
    if not kept:
        kept = [words[int(rng.integers(len(words)))]]
    return " ".join(kept)


def eda(text: str, alpha: float, rng: np.random.Generator, vocabulary: Sequence[str] = ()) -> str:
    """One EDA operation drawn at random: random insertion, random swap or random deletion at ``alpha``.

    Synonym replacement, EDA's fourth operation, needs a thesaurus and is left out.
    """
    op = int(rng.integers(3))
    if op == 0:
        return random_insertion(text, alpha, rng, vocabulary)
    if op == 1:
        return word_swap(text, alpha, rng)
    return random_deletion(text, alpha, rng)


__all__ = [
    "CHAR_OPS",
    "KEYBOARD",
    "char_noise",
    "eda",
    "edit_word",
    "editable",
    "random_deletion",
    "random_insertion",
    "word_dropout",
    "word_swap",
]
