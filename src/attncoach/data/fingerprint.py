"""Fingerprints of a run's data sources, so that a run never rebuilds its splits from a changed file.

``eval RUN``, ``subnets``, ``search`` and ``train --resume`` split the data source again
with the run's seed. Shuffle or edit the file and "the same" test split holds other rows,
training rows among them. A new run therefore records the size and SHA-256 of every file it
read (``data.path``, or a built-in corpus' own files) in ``sources.json``::

    {"format": "attncoach.sources", "files": [{"path": "/abs/reviews.csv", "bytes": 51234, "sha256": "..."}]}

and those commands refuse a source that no longer matches.

Example:
    >>> write_sources(run.sources, fingerprint_sources(cfg.data, "tweets-sentiment"))  # doctest: +SKIP
    >>> check_sources(run, cfg.data, "tweets-sentiment", hint="restore it")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from attncoach.atomicfile import atomic_write_json
from attncoach.config import DataConfig
from attncoach.data.builtin import BUILTIN_FILES
from attncoach.data.images import BUILTIN_IMAGE_FILES, image_files
from attncoach.data.interactions import BUILTIN_INTERACTION_FILES
from attncoach.errors import AttncoachError
from attncoach.rundir import RunDir

log = logging.getLogger("attncoach")

SOURCES_FORMAT = "attncoach.sources"


@dataclass(frozen=True)
class Fingerprint:
    """What identifies one source file: where it was, its size and the SHA-256 of its bytes."""

    path: str
    bytes: int
    sha256: str


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes, as hex (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint_file(path: Path) -> Fingerprint:
    """The fingerprint of one file (its path resolved)."""
    path = Path(path)
    return Fingerprint(str(path.resolve()), path.stat().st_size, sha256_file(path))


def source_files(cfg: DataConfig, corpus: str) -> list[Path]:
    """The files the data section ``cfg`` is read from.

    Args:
        cfg: the data section of a run config.
        corpus: the task's built-in corpus, used when ``cfg`` names neither a path nor a corpus.

    Returns:
        ``data.path`` (an image folder: its images), or the built-in corpus' files ([] for a corpus
        that does not list them).
    """
    if cfg.path is not None:
        return image_files(Path(cfg.path)) if Path(cfg.path).is_dir() else [Path(cfg.path)]
    name = cfg.builtin or corpus
    locate = BUILTIN_FILES.get(name) or BUILTIN_INTERACTION_FILES.get(name) or BUILTIN_IMAGE_FILES.get(name)
    return locate() if locate is not None else []


def fingerprint_sources(cfg: DataConfig, corpus: str) -> list[Fingerprint]:
    """The fingerprints of every file :func:`source_files` names (call it once they have been read)."""
    return [fingerprint_file(path) for path in source_files(cfg, corpus)]


def write_sources(path: Path, fingerprints: list[Fingerprint]) -> None:
    """Write ``sources.json`` atomically."""
    atomic_write_json(path, {"format": SOURCES_FORMAT, "files": [asdict(f) for f in fingerprints]})


def read_sources(path: Path) -> list[Fingerprint] | None:
    """The fingerprints in ``sources.json``, or None when the run has none (written before they existed).

    Raises:
        AttncoachError: a damaged file.
    """
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != SOURCES_FORMAT:
            raise ValueError(data.get("format"))
        return [Fingerprint(str(f["path"]), int(f["bytes"]), str(f["sha256"])) for f in data["files"]]
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        raise AttncoachError(f"{path} is damaged (it should hold the run's data fingerprints)") from None


def check_sources(run: RunDir, cfg: DataConfig, corpus: str, hint: str) -> None:
    """Refuse to rebuild ``run``'s splits from a data source that changed since the run was created.

    A file that does not exist is left to the reader, which names it; a run without
    ``sources.json`` (written by an older attncoach) is rebuilt with a warning.

    Args:
        run: the run directory.
        cfg: the run's data section.
        corpus: the task's built-in corpus (see :func:`source_files`).
        hint: what the user can do instead, ending the message.

    Raises:
        AttncoachError: one line naming the file and what changed (size or content).
    """
    recorded = read_sources(run.sources)
    if recorded is None:
        log.warning(
            "run %s records no fingerprint of its data (it predates sources.json): the splits are rebuilt "
            "from the source without checking that it is unchanged",
            run.path,
        )
        return
    files = source_files(cfg, corpus)
    if len(files) != len(recorded):
        raise AttncoachError(
            f"run {run.path} was created from {len(recorded)} data file(s) and its config now names "
            f"{len(files)}; {hint}"
        )
    for path, before in zip(files, recorded):
        if path.is_file():
            change = _change(before, path)
            if change is not None:
                raise AttncoachError(
                    f"data source {path} has changed since run {run.path} was created ({change}): its splits "
                    f"would now hold other rows; {hint}"
                )


def _change(before: Fingerprint, path: Path) -> str | None:
    """How ``path`` differs from its fingerprint, or None when it does not."""
    size = path.stat().st_size
    if size != before.bytes:
        return f"{before.bytes:,} -> {size:,} bytes"
    digest = sha256_file(path)
    if digest != before.sha256:
        return f"same {size:,} bytes, SHA-256 {before.sha256[:12]}... -> {digest[:12]}..."
    return None
