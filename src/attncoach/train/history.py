"""The run's scalar history: every group of scalars the recipe logs, as lines of ``RUN/scalars.jsonl``.

One JSON object per line, ``{"step": 40, "group": "val", "values": {"loss": 0.61, "macro_f1": 0.72}}``,
appended and flushed as the run logs them (a non-finite value is written as null), so the
file holds everything up to the moment a run is killed. A resumed run first drops the lines
after its checkpoint's step (it logs those steps again), so the file never holds a point twice
from two passes over the same steps. ``attncoach report`` reads it
(:func:`attncoach.report.runfiles.read_scalars`).

Example:
    >>> history = ScalarHistory(Path("runs/demo/scalars.jsonl"))  # doctest: +SKIP
    >>> history.on_log(recipe, 20, "train", {"loss": 0.9})        # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from attncoach.atomicfile import atomic_write_text, json_safe
from attncoach.train.callbacks import Callback


class ScalarHistory(Callback):
    """A callback that appends every ``on_log`` call to ``path`` (always on: one short line per call)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO | None = None

    def on_train_start(self, recipe: Any) -> None:
        """Keep the lines up to the step training (re)starts from; a resumed run logs the later ones again."""
        self.truncate(recipe.state.step)

    def truncate(self, step: int) -> None:
        """Drop the lines after ``step`` (and any line a killed process left half written)."""
        self.close()
        if not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("step"), int) and entry["step"] <= step:
                kept.append(line)
        atomic_write_text(self.path, "".join(f"{line}\n" for line in kept))

    def on_log(self, recipe: Any, step: int, group: str, values: dict[str, float]) -> None:
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")
        entry = {"step": int(step), "group": group, "values": {k: float(v) for k, v in values.items()}}
        self._file.write(json.dumps(json_safe(entry), allow_nan=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
