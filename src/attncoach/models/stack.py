"""What every attncoach model shares: its elastic stack is ``model.encoder``, and it is rebuilt from a config dict.

Example:
    >>> check_config_keys("Toy", {"encoder": {}, "size": 3}, known=("encoder", "size"), required=("encoder",))
    >>> check_config_keys("Toy", {"colour": 1}, known=("encoder",), required=())
    Traceback (most recent call last):
    ...
    ValueError: unknown Toy config key 'colour'; valid keys: ['encoder']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from torch import nn

from attncoach.models.encoder import SubnetConfig


class StackModel(nn.Module):
    """A model whose elastic stack is ``self.encoder``: switching its sub-network is switching the stack's."""

    encoder: Any

    @property
    def subnet(self) -> SubnetConfig:
        """The stack's active sub-network (``SubnetConfig()`` for the full model)."""
        return self.encoder.subnet

    def set_subnet(self, subnet: SubnetConfig | None) -> None:
        """Switches the stack's sub-network without copying weights; ``None`` restores the full model."""
        self.encoder.set_subnet(subnet)


def check_config_keys(model: str, data: Mapping[str, Any], known: Iterable[str], required: Iterable[str]) -> None:
    """Refuse a ``config_dict`` with a key ``model`` does not know, or without one it needs.

    Raises:
        ValueError: naming the key (and the valid ones).
    """
    known = list(known)
    for key in data:
        if key not in known:
            raise ValueError(f"unknown {model} config key {key!r}; valid keys: {known}")
    for key in required:
        if key not in data:
            raise ValueError(f"{model} config needs the key {key!r}")
