"""The search space of ``attncoach tune``: config keys and the ranges their values are drawn from.

Written in the config's ``tune.space`` section, one entry per config key::

    tune:
      space:
        train.lr: {log_uniform: [1.0e-5, 1.0e-2]}    # a float, uniform in log space
        train.weight_decay: {uniform: [0.0, 0.1]}     # a float
        model.layers: {int: [2, 4]}                   # an integer, ends included
        train.batch_size: {choice: [16, 32, 64]}      # one of the values (any YAML scalars)

Every key is checked against the config before the first trial: each end of each range (each
value of a choice) must make a valid config, so a study never starts on a typo.

Example:
    >>> space = parse_space({"train.lr": {"log_uniform": [1e-4, 1e-2]}, "model.layers": {"choice": [2, 4]}})
    >>> [(d.key, d.kind, d.values) for d in space]
    [('train.lr', 'log_uniform', (0.0001, 0.01)), ('model.layers', 'choice', (2, 4))]
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from attncoach.errors import AttncoachError

KINDS = ("log_uniform", "uniform", "int", "choice")
_SECTIONS_NOT_SEARCHED = ("tune", "output_dir")  # what a trial may not change: its own search, its directory


@dataclass(frozen=True)
class Dimension:
    """One searched config key: ``kind`` is one of :data:`KINDS`; ``values`` the two ends, or the choices."""

    key: str
    kind: str
    values: tuple[Any, ...]

    def override(self, value: Any) -> str:
        """The ``section.key=value`` override that sets this key to ``value`` (JSON is YAML)."""
        return f"{self.key}={json.dumps(value)}"

    def describe(self) -> str:
        """How the range reads in a table: ``log_uniform [1e-05, 0.01]``, ``choice {2, 4}``."""
        if self.kind == "choice":
            return "choice {" + ", ".join(json.dumps(v) for v in self.values) + "}"
        return f"{self.kind} [{self.values[0]:g}, {self.values[1]:g}]"


def parse_space(raw: Any) -> list[Dimension]:
    """The dimensions of ``tune.space``, in the order written.

    Raises:
        AttncoachError: an empty or malformed space, an unknown kind, a bad range (one line naming the key).
    """
    if raw is None or (isinstance(raw, Mapping) and not raw):
        raise AttncoachError(
            "the config has no search space: add tune.space, e.g. tune: {space: {train.lr: {log_uniform: [1.0e-4, "
            "1.0e-2]}}}"
        )
    if not isinstance(raw, Mapping):
        raise AttncoachError(f"tune.space must map config keys to ranges, got {type(raw).__name__}")
    return [_dimension(str(key), spec) for key, spec in raw.items()]


def _dimension(key: str, spec: Any) -> Dimension:
    where = f"tune.space['{key}']"
    if key.split(".")[0] in _SECTIONS_NOT_SEARCHED:
        raise AttncoachError(f"{where}: {key} cannot be searched (each trial has its own)")
    if "." not in key and key != "task":
        raise AttncoachError(f"{where}: name a config key as section.key (e.g. train.lr)")
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise AttncoachError(f"{where} must be one of {{{': [..]}, {'.join(KINDS)}: [..]}}, got {spec!r}")
    ((kind, values),) = spec.items()
    if kind not in KINDS:
        raise AttncoachError(f"{where}: unknown range kind {kind!r}; use one of {', '.join(KINDS)}")
    if not isinstance(values, list) or not values:
        raise AttncoachError(f"{where}: {kind} needs a list of values, got {values!r}")
    if kind == "choice":
        if any(v is not None and not isinstance(v, (bool, int, float, str)) for v in values):
            raise AttncoachError(f"{where}: choices must be single values (numbers, strings, true/false, null)")
        if len(set(map(json.dumps, values))) != len(values):
            raise AttncoachError(f"{where}: the choices repeat a value: {values}")
        return Dimension(key, kind, tuple(values))
    if len(values) != 2:
        raise AttncoachError(f"{where}: {kind} needs [low, high], got {values!r}")
    low, high = values
    number = int if kind == "int" else (int, float)
    if any(isinstance(v, bool) or not isinstance(v, number) for v in values):
        wanted = "integers" if kind == "int" else "numbers"
        raise AttncoachError(f"{where}: {kind} needs two {wanted}, got {values!r}")
    if not all(math.isfinite(v) for v in values) or not low < high:
        raise AttncoachError(f"{where}: {kind} needs low < high, got {values!r}")
    if kind == "log_uniform" and low <= 0:
        raise AttncoachError(f"{where}: log_uniform needs low > 0, got {values!r}")
    return Dimension(key, kind, (low, high) if kind == "int" else (float(low), float(high)))


def check_space(space: list[Dimension], check: Callable[[list[str]], Any]) -> None:
    """Refuse a dimension whose key is not a config key or whose values make an invalid config.

    Args:
        space: the parsed dimensions.
        check: builds a config from overrides (``load_run_config`` with the base config file),
            raising :class:`AttncoachError` on a bad key or value.
    """
    for dimension in space:
        probes = dimension.values if dimension.kind == "choice" else dimension.values[:2]
        for value in probes:
            try:
                check([dimension.override(value)])
            except AttncoachError as exc:
                raise AttncoachError(f"tune.space['{dimension.key}'] = {value!r}: {exc}") from None


def suggest(trial: Any, space: list[Dimension]) -> dict[str, Any]:
    """One value per dimension from an Optuna trial (a retried trial gets back its first values)."""
    values: dict[str, Any] = {}
    for d in space:
        if d.kind == "log_uniform":
            values[d.key] = trial.suggest_float(d.key, d.values[0], d.values[1], log=True)
        elif d.kind == "uniform":
            values[d.key] = trial.suggest_float(d.key, d.values[0], d.values[1])
        elif d.kind == "int":
            values[d.key] = trial.suggest_int(d.key, d.values[0], d.values[1])
        else:
            values[d.key] = trial.suggest_categorical(d.key, list(d.values))
    return values
