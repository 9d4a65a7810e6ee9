"""The elastic space, and naming sub-networks: width and depth multipliers, or a JSON file.

:class:`ElasticSpace` is the set of widths and depths a supernet was trained for
(``elastic.*`` in the config); an elastic run saves it as ``"elastic"`` in
``model_config.json``, and ``subnets``, ``search``, ``eval --width`` and ``export`` read it
from there and refuse sub-nets outside it.

A width ``w`` keeps ``round(w * heads)`` heads and ``round(w * ffn_dim)`` FFN neurons in
every layer (at least one of each; of each layer's own heads and neurons in an exported
model whose layers differ); a depth ``d`` keeps ``round(d * layers)`` layers (at
least one), evenly spaced from the first to the last. Heads and neurons are prefixes, so
after :func:`attncoach.elastic.importance.rewire` they are the most important ones.

Example:
    >>> cfg = EncoderConfig(vocab_size=100, dim=64, layers=6, heads=4, ffn_dim=256)
    >>> print(subnet_for(cfg, width=0.5, depth=0.5))
    layers=0,2,5 heads=2,2,2,2,2,2 ffn=128,128,128,128,128,128
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attncoach.errors import AttncoachError
from attncoach.models.encoder import ElasticEncoder, EncoderConfig, SubnetConfig


@dataclass(frozen=True)
class ElasticSpace:
    """Widths and depths a supernet is trained for (DynaBERT's grid, Hou et al. 2020).

    Attributes:
        widths: width multipliers for heads and (unless ``ffn_widths`` is set) FFN neurons.
        depths: depth multipliers (fractions of the layers, evenly spaced).
        ffn_widths: separate multipliers for the FFN neurons; ``None`` = ``widths``.
        per_layer: Mix'n'Match: sampled and searched sub-nets choose each layer's width
            independently (the smallest and largest stay uniform).

    Example:
        >>> space = ElasticSpace(widths=(0.5, 1.0), depths=(0.5, 1.0))
        >>> space.check(0.75, 1.0)   # inside [0.5, 1] x [0.5, 1]: fine
        >>> ElasticSpace.from_dict(space.to_dict()) == space
        True
    """

    widths: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    depths: tuple[float, ...] = (0.5, 1.0)
    ffn_widths: tuple[float, ...] | None = None
    per_layer: bool = False

    def __post_init__(self) -> None:
        for name in ("widths", "depths", "ffn_widths"):
            values = getattr(self, name)
            if values is None:
                continue
            values = tuple(sorted({float(v) for v in values}))
            if not values or not all(0 < v <= 1 for v in values):
                raise AttncoachError(
                    f"elastic.{name} must be a non-empty list of fractions in (0, 1], got {list(values)}"
                )
            if values[-1] != 1.0:
                raise AttncoachError(f"elastic.{name} must include 1.0 (the full model), got {list(values)}")
            object.__setattr__(self, name, values)

    @property
    def neuron_widths(self) -> tuple[float, ...]:
        """The FFN width multipliers (``ffn_widths``, else ``widths``)."""
        return self.ffn_widths if self.ffn_widths is not None else self.widths

    def check(self, width: float, depth: float, ffn_width: float | None = None) -> None:
        """Refuse a width or depth below the smallest the supernet was trained for.

        Raises:
            AttncoachError: naming the trained range.
        """
        checks = (
            ("width", width, self.widths),
            ("depth", depth, self.depths),
            ("ffn width", width if ffn_width is None else ffn_width, self.neuron_widths),
        )
        for name, value, trained in checks:
            if not trained[0] <= value <= 1:
                raise AttncoachError(
                    f"{name} {value:g} is outside the trained space [{trained[0]:g}, 1] "
                    f"(elastic {name}s {', '.join(f'{v:g}' for v in trained)})"
                )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as saved in ``model_config.json``."""
        return {
            "widths": list(self.widths),
            "depths": list(self.depths),
            "ffn_widths": None if self.ffn_widths is None else list(self.ffn_widths),
            "per_layer": self.per_layer,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ElasticSpace:
        """Inverse of :meth:`to_dict`.

        Raises:
            AttncoachError: an unknown key or a bad value.
        """
        known = {"widths", "depths", "ffn_widths", "per_layer"}
        unknown = set(data) - known
        if unknown:
            raise AttncoachError(f"unknown elastic space key(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


def subnet_for(
    config: EncoderConfig, width: float = 1.0, depth: float = 1.0, ffn_width: float | None = None
) -> SubnetConfig:
    """The sub-network at ``width`` and ``depth`` (each in (0, 1]) of a model shaped by ``config``.

    Args:
        config: the full model's encoder config.
        width: fraction of the heads (and of the FFN neurons unless ``ffn_width`` is given).
        depth: fraction of the layers, evenly spaced from the first to the last.
        ffn_width: fraction of the FFN neurons; ``None`` = ``width``.

    Raises:
        AttncoachError: a multiplier outside (0, 1].
    """
    ffn_width = width if ffn_width is None else ffn_width
    for name, value in (("width", width), ("depth", depth), ("ffn width", ffn_width)):
        if not 0 < value <= 1:
            raise AttncoachError(f"{name} {value:g} is outside (0, 1]: a sub-net keeps a fraction of the model")
    heads = tuple(max(1, round(width * h)) for h in config.heads_per_layer())
    ffn = tuple(max(1, round(ffn_width * n)) for n in config.ffn_per_layer())
    count = max(1, round(depth * config.layers))
    layers = tuple(int(i) for i in np.unique(np.round(np.linspace(0, config.layers - 1, count)).astype(int)))
    return SubnetConfig(layers=layers, heads=heads, ffn=ffn)


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


def saved_space(clf: Any) -> ElasticSpace | None:
    """The trained space of a loaded model (``clf.elastic``, from its ``model_config.json``), or None.

    Raises:
        AttncoachError: the saved space is malformed.
    """
    if getattr(clf, "space", None) is not None:
        return clf.space
    if getattr(clf, "elastic", None) is None:
        return None
    try:
        clf.space = ElasticSpace.from_dict(clf.elastic)
    except (TypeError, AttncoachError) as exc:
        where = clf.model_dir / "model_config.json" if clf.model_dir is not None else "model_config.json"
        raise AttncoachError(f"{where} has an invalid elastic space ({exc})") from None
    return clf.space
