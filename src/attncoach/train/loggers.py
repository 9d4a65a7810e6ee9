"""Metric loggers: TensorBoard when enabled, nothing otherwise.

Hooks are plain methods; a logger that does not care about one leaves it as a no-op.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class NullLogger:
    """Logs nothing; the base of every logger."""

    def scalars(self, step: int, values: dict[str, float], prefix: str = "") -> None:
        """Record scalar values at ``step``."""

    def text(self, tag: str, text: str) -> None:
        """Record a piece of text (e.g. the resolved config)."""

    def close(self) -> None:
        """Flush and release resources."""


class TensorBoardLogger(NullLogger):
    """Writes TensorBoard event files under ``log_dir``."""

    def __init__(self, log_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir))

    def scalars(self, step: int, values: dict[str, float], prefix: str = "") -> None:
        for name, value in values.items():
            self.writer.add_scalar(f"{prefix}{name}", value, step)

    def text(self, tag: str, text: str) -> None:
        self.writer.add_text(tag, f"```\n{text}\n```")

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


def make_logger(enabled: bool, log_dir: Path) -> Any:
    """TensorBoard logger when ``enabled``, else a :class:`NullLogger`."""
    return TensorBoardLogger(log_dir) if enabled else NullLogger()
