"""Checks the CLI tests share: a refused command, and what a directory holds."""

from __future__ import annotations

import hashlib
from pathlib import Path

from attncoach.cli import main


def refused(capsys, argv: list[str], *words: str, one_line: bool = False) -> str:
    """Run ``attncoach ARGV``; assert it ends with exit 2 and one ``error:`` line naming ``words``; return it.

    With ``one_line``, the error is all that stderr holds (no info lines before it).
    """
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err, err
    last = err.splitlines()[-1]
    assert last.startswith("error: "), err
    if one_line:
        assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in last, (word, last)
    return last


def digest(root: Path) -> dict[str, str]:
    """The SHA-256 of every file below ``root``, by relative path: equal digests = nothing changed."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
