"""Loggers: callbacks that write the run's scalars where people watch them (TensorBoard).

The recipe fans every group of scalars (``train/``, ``val/``, ``test/``, ``coach/``) out to
its callbacks' ``on_log``; a logger is a callback that writes them and releases its writer in
``close``. ``log.tensorboard: true`` (the default) adds :class:`TensorBoardLogger`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attncoach.train.callbacks import Callback


class TensorBoardLogger(Callback):
    """Writes TensorBoard event files under ``log_dir``; the tags are ``group/name``."""

    def __init__(self, log_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir))

    def on_log(self, recipe: Any, step: int, group: str, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(f"{group}/{name}", value, step)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


def make_loggers(log: Any, log_dir: Path) -> list[Callback]:
    """The loggers that the ``log`` section of the config turns on (``log.tensorboard``)."""
    return [TensorBoardLogger(log_dir)] if log.tensorboard else []
