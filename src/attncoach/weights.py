"""Reading weights files (safetensors only: no pickle from outside is ever loaded)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from attncoach.errors import AttncoachError


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file; a missing or damaged file is an :class:`AttncoachError`."""
    if not path.is_file():
        raise AttncoachError(f"weights file not found: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise AttncoachError(f"weights file {path} is damaged or not safetensors ({first_line(exc)})") from None


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
