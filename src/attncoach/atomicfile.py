"""Atomic file writes: readers see the old file or the new one, never a part of one.

Each writer writes a temporary file beside the target, flushes it to disk with ``fsync``,
renames it over the target with ``os.replace`` and flushes the directory entry.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import torch
from safetensors.torch import save_file


def fsync_dir(path: Path) -> None:
    """Flush a directory entry (the rename of a file inside it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _finish_atomic(tmp: Path, path: Path) -> None:
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never a part."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    _finish_atomic(tmp, path)


@contextlib.contextmanager
def atomic_text_writer(path: Path) -> Iterator[TextIO]:
    """A UTF-8 text file to write ``path`` through piece by piece (a stream of lines of any length).

    ``path`` is replaced when the ``with`` block ends, and only if it ends without an error;
    otherwise the temporary file is removed and ``path`` stays as it was.

    Example:
        >>> with atomic_text_writer(Path("out.jsonl")) as fh:  # doctest: +SKIP
        ...     fh.write('{"label": "positive"}\n')
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            yield fh
        _finish_atomic(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (a non-finite number as null: see :func:`json_safe`)."""
    atomic_write_text(path, json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")


def json_safe(data: Any) -> Any:
    """``data`` with every NaN or infinite float replaced by None, so that it is valid JSON.

    Python's ``json`` writes ``NaN`` and ``Infinity``, which JSON does not have.

    Example:
        >>> json_safe({"loss": float("nan"), "f1": [0.5, float("inf")], "steps": 3})
        {'loss': None, 'f1': [0.5, None], 'steps': 3}
    """
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: json_safe(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_safe(v) for v in data]
    return data


def save_safetensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Save tensors into the new file ``path`` with the permissions ``open()`` gives a new file (the umask's).

    ``safetensors`` writes a private temporary file and renames it, which leaves the file
    readable by its owner only (0600) whatever the umask: the mode of a file created with
    ``open()`` at the same place is put back.
    """
    with open(path, "wb"):
        pass
    mode = os.stat(path).st_mode & 0o7777
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))
    os.chmod(path, mode)


def atomic_save_safetensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Save tensors as safetensors, atomically, with the permissions of the run's other files."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)  # a stale one from a killed process would pass on its mode
    save_safetensors(tensors, tmp)
    _finish_atomic(tmp, path)
