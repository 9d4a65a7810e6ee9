"""Naming sub-networks: width and depth multipliers, or a SubnetConfig JSON file.

A width ``w`` keeps ``round(w * heads)`` heads and ``round(w * ffn_dim)`` FFN neurons in
every layer (at least one of each); a depth ``d`` keeps ``round(d * layers)`` layers (at
least one), evenly spaced from the first to the last. Heads and neurons are prefixes, so
after :func:`attncoach.elastic.importance.rewire` they are the most important ones.

Example:
    >>> cfg = EncoderConfig(vocab_size=100, dim=64, layers=6, heads=4, ffn_dim=256)
    >>> print(subnet_for(cfg, width=0.5, depth=0.5))
    layers=0,2,5 heads=2,2,2,2,2,2 ffn=128,128,128,128,128,128
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from attncoach.errors import AttncoachError
from attncoach.models.encoder import ElasticEncoder, EncoderConfig, SubnetConfig


def subnet_for(config: EncoderConfig, width: float = 1.0, depth: float = 1.0) -> SubnetConfig:
    """The sub-network at ``width`` and ``depth`` (each in (0, 1]) of a model shaped by ``config``.

    Raises:
        AttncoachError: a multiplier outside (0, 1].
    """
    for name, value in (("width", width), ("depth", depth)):
        if not 0 < value <= 1:
            raise AttncoachError(f"{name} {value:g} is outside (0, 1]: a sub-net keeps a fraction of the model")
    heads = max(1, round(width * config.heads))
    ffn = max(1, round(width * config.ffn_dim))
    count = max(1, round(depth * config.layers))
    layers = tuple(int(i) for i in np.unique(np.round(np.linspace(0, config.layers - 1, count)).astype(int)))
    return SubnetConfig(layers=layers, heads=(heads,) * config.layers, ffn=(ffn,) * config.layers)


def read_subnet(path: str | Path, encoder: ElasticEncoder) -> SubnetConfig:
    """A SubnetConfig from a JSON file (``SubnetConfig.to_dict`` format), checked against ``encoder``.

    Raises:
        AttncoachError: a missing or malformed file, or a sub-net that does not fit the model.
    """
    path = Path(path)
    if not path.is_file():
        raise AttncoachError(f"subnet file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise AttncoachError(f"subnet file {path} is not valid JSON") from None
    if not isinstance(data, dict):
        raise AttncoachError(f"subnet file {path} must hold an object with layers, heads and ffn")
    try:
        subnet = SubnetConfig.from_dict(data)
        encoder.check_subnet(subnet)
    except (ValueError, TypeError) as exc:
        raise AttncoachError(f"subnet file {path} does not match the model: {exc}") from None
    return subnet
