"""A progress bar for long work: step, loss, best val metric and ETA (rich, on stderr)."""

from __future__ import annotations

import logging
import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

log = logging.getLogger("attncoach")

_console: Console | None = None


def console() -> Console:
    """The one stderr console shared by the progress bar and the log handler."""
    global _console
    if _console is None or _console.file is not sys.stderr:
        _console = Console(file=sys.stderr)
    return _console


class TrainingProgress:
    """Shows training progress; with ``enabled=False`` it only logs notes.

    Args:
        total: the number of steps.
        start: the step it starts from (non-zero when resuming).
        enabled: draw the bar at all.
    """

    def __init__(self, total: int, start: int = 0, enabled: bool = True, description: str = "train"):
        self.enabled = enabled and console().is_terminal
        self.fields: dict[str, Any] = {"loss": float("nan"), "val_f1": float("nan")}
        self._progress = None
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4f}  best val F1 {task.fields[val_f1]:.4f}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=console(),
                transient=False,
            )
            self._task = self._progress.add_task(description, total=total, completed=start, **self.fields)

    def __enter__(self) -> TrainingProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, step: int, **fields: Any) -> None:
        """Move the bar to ``step`` and refresh the shown fields."""
        if self._progress is not None:
            self.fields.update(fields)
            self._progress.update(self._task, completed=step, **self.fields)

    def note(self, message: str, **fields: Any) -> None:
        """Log a line (e.g. an evaluation result) above the bar."""
        self.fields.update(fields)
        log.info(message)
        if self._progress is not None:
            self._progress.update(self._task, **self.fields)


class StreamProgress:
    """Progress through a file read as a stream: bytes read of its size, and the items done (rich, on stderr).

    Shown only when ``enabled`` and stderr is a terminal; otherwise every call does nothing.

    Args:
        total_bytes: the file's size.
        description: what is being done, e.g. ``predict``.
        unit: what the count counts, e.g. ``texts``.
        enabled: draw the bar at all (off with ``--quiet``).
    """

    def __init__(self, total_bytes: int, description: str, unit: str, enabled: bool = True):
        self._progress = None
        if enabled and console().is_terminal:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f} %  {task.fields[done]:,} " + unit),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=console(),
                transient=False,
            )
            self._task = self._progress.add_task(description, total=max(1, total_bytes), done=0)

    def __enter__(self) -> StreamProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, position: int, done: int) -> None:
        """``position`` bytes of the file read, ``done`` items finished."""
        if self._progress is not None:
            self._progress.update(self._task, completed=position, done=done)


class CountProgress:
    """Progress through a count of items known once the work starts (e.g. the examples an attack takes).

    The bar appears at the first :meth:`update`, and only when ``enabled`` and stderr is a
    terminal; otherwise every call does nothing.

    Args:
        description: what is being done, e.g. ``attack``.
        unit: what the count counts, e.g. ``examples``.
        enabled: draw the bar at all (off with ``--quiet``).
    """

    def __init__(self, description: str, unit: str, enabled: bool = True):
        self._progress = None
        self._started = False
        if enabled and console().is_terminal:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(unit),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=console(),
                transient=False,
            )
            self._task = self._progress.add_task(description, total=None)

    def __enter__(self) -> CountProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._started:
            self._progress.stop()

    def update(self, done: int, total: int) -> None:
        """``done`` of ``total`` items finished."""
        if self._progress is None:
            return
        if not self._started:
            self._progress.start()
            self._started = True
        self._progress.update(self._task, completed=done, total=total)
