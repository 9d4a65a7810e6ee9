"""The run's scalar history: every group of scalars the recipe logs, as lines of ``RUN/scalars.jsonl``.

One JSON object per line, ``{"step": 40, "group": "val", "values": {"loss": 0.61, "macro_f1": 0.72}}``,
appended and flushed as the run logs them (a non-finite value is written as null), so the
file holds everything up to the moment a run is killed. Each checkpoint keeps how many lines
the file held when it was saved, and a run resumed from it first cuts the file back to them
(the resumed run logs the rest again), so the file never holds a point twice and loses none.
``attncoach report`` reads it (:func:`attncoach.report.runfiles.read_scalars`).

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

    key = "history"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines = 0  # in the file, the ones this process kept or wrote
        self._resumed_lines: int | None = None
        self._file: TextIO | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"lines": self.lines}

    def load_state_dict(self, state: dict[str, Any] | None, recipe: Any) -> None:
        self._resumed_lines = None if state is None else int(state["lines"])

    def on_train_start(self, recipe: Any) -> None:
        """Keep what the run logged up to the step it (re)starts from; it logs everything after again."""
        step = recipe.state.step
        if step == 0:
            self._cut(lambda number, entry: False)
        elif self._resumed_lines is not None:
            self._cut(lambda number, entry: number < self._resumed_lines)
        else:  # a checkpoint from before the history existed: by step
            self._cut(lambda number, entry: entry["step"] <= step)

    def _cut(self, keep: Any) -> None:
        """Rewrite the file with the complete lines ``keep(number, entry)`` accepts (a torn one never)."""
        self.close()
        kept = []
        if self.path.is_file():
            for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines()):
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("step"), int) and keep(number, entry):
                    kept.append(line)
            atomic_write_text(self.path, "".join(f"{line}\n" for line in kept))
        self.lines = len(kept)

    def on_log(self, recipe: Any, step: int, group: str, values: dict[str, float]) -> None:
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")
        entry = {"step": int(step), "group": group, "values": {k: float(v) for k, v in values.items()}}
        self._file.write(json.dumps(json_safe(entry), allow_nan=False) + "\n")
        self._file.flush()
        self.lines += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
