"""Task heads: pooling registry and the sequence classification head.

A pooling turns hidden states ``(B, T, D)`` and a padding mask ``(B, T)`` (True = real token)
into one vector per sequence ``(B, D)``. Poolings are registered by name in ``POOLINGS``.

Example:
    >>> pool = get_pooling("mean")
    >>> hidden = torch.ones(2, 3, 4)
    >>> pool(hidden, torch.tensor([[True, True, False], [True, False, False]])).shape
    torch.Size([2, 4])
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Pooling = Callable[[Tensor, "Tensor | None"], Tensor]

POOLINGS: dict[str, Pooling] = {}


def register_pooling(name: str) -> Callable[[Pooling], Pooling]:
    """Registers a pooling function under ``name`` (use as a decorator)."""

    def register(fn: Pooling) -> Pooling:
        if name in POOLINGS:
            raise ValueError(f"pooling {name!r} is already registered")
        POOLINGS[name] = fn
        return fn

    return register


def get_pooling(name: str) -> Pooling:
    """Returns the pooling registered as ``name``.

    Raises:
        ValueError: If no pooling has that name; the message lists the valid names.
    """
    if name not in POOLINGS:
        raise ValueError(f"unknown pooling {name!r}; valid: {sorted(POOLINGS)}")
    return POOLINGS[name]


@register_pooling("cls")
def cls_pooling(hidden: Tensor, mask: Tensor | None = None) -> Tensor:
    """The first token's hidden state."""
    return hidden[:, 0]  # (B, D)


@register_pooling("mean")
def mean_pooling(hidden: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean over real tokens (all tokens when ``mask`` is None)."""
    if mask is None:
        return hidden.mean(dim=1)
    weights = mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    total = (hidden * weights).sum(dim=1)  # (B, D)
    return total / weights.sum(dim=1).clamp(min=1.0)


@register_pooling("max")
def max_pooling(hidden: Tensor, mask: Tensor | None = None) -> Tensor:
    """Element-wise max over real tokens (all tokens when ``mask`` is None)."""
    if mask is not None:
        lowest = torch.finfo(hidden.dtype).min
        hidden = hidden.masked_fill(~mask.to(torch.bool).unsqueeze(-1), lowest)  # (B, T, D)
    return hidden.max(dim=1).values  # (B, D)


class ClassificationHead(nn.Module):
    """Pooling, dropout, optional dense + GELU layer, then a linear layer to the labels.

    Args:
        dim: Hidden width of the encoder.
        num_labels: Number of classes.
        pooling: A key of ``POOLINGS``.
        dropout: Dropout on the pooled vector.
        hidden: Whether to add a ``dim -> dim`` dense layer with GELU before the output.
    """

    def __init__(
        self,
        dim: int,
        num_labels: int,
        pooling: str = "mean",
        dropout: float = 0.1,
        hidden: bool = False,
    ) -> None:
        super().__init__()
        if num_labels < 1:
            raise ValueError(f"num_labels must be positive, got {num_labels}")
        self.pooling_name = pooling
        self.pool = get_pooling(pooling)
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(dim, dim) if hidden else None
        self.out = nn.Linear(dim, num_labels)

    def forward(self, hidden: Tensor, mask: Tensor | None = None) -> Tensor:
        """Maps hidden states ``(B, T, D)`` and a mask ``(B, T)`` to logits ``(B, num_labels)``."""
        x = self.dropout(self.pool(hidden, mask))  # (B, D)
        if self.dense is not None:
            x = self.dropout(F.gelu(self.dense(x)))
        return self.out(x)

    def extra_repr(self) -> str:
        return f"pooling={self.pooling_name!r}"
