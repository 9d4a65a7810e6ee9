"""What a report reads from a run directory, read leniently: whatever exists, and notes on what does not.

A run killed early has no ``metrics.json``; a run from before ``scalars.jsonl`` existed has
only the evaluations kept in ``metrics.json``'s history; a line a killed process left half
written is skipped. :func:`read_run` never fails on such a run: it records what is missing
in :attr:`RunFiles.missing`, which the report shows.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from attncoach.errors import AttncoachError
from attncoach.rundir import RunDir


@dataclass
class RunFiles:
    """The readable parts of one run directory.

    Attributes:
        run: the run directory.
        name: how the report names the run (its folder name).
        config: ``config.yaml`` as plain data (not validated: an older run's keys are shown as they are).
        metrics: ``metrics.json``, or None before the run finished.
        scalars: ``scalars.jsonl`` entries ``{"step", "group", "values"}``, in order.
        decisions: ``coach.jsonl`` entries (the coach's decisions with their reasons).
        examples: ``examples.jsonl`` rows (the learning record), or None.
        subnets: ``subnets.json`` (``attncoach subnets RUN --out RUN/subnets.json``), or None.
        missing: one line per expected file that is absent or unreadable.
    """

    run: RunDir
    name: str
    config: dict[str, Any]
    metrics: dict[str, Any] | None = None
    scalars: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    examples: list[dict[str, Any]] | None = None
    subnets: dict[str, Any] | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def task(self) -> str:
        """The run's task (``text_classification`` for a config that names none)."""
        return str(self.config.get("task") or "text_classification")

    def section(self, name: str) -> dict[str, Any]:
        """A section of the config (empty when absent)."""
        value = self.config.get(name)
        return value if isinstance(value, dict) else {}

    def series(self, group: str, name: str) -> tuple[list[int], list[float | None]]:
        """The steps and values of one scalar (the last value logged at a step wins)."""
        by_step: dict[int, float | None] = {}
        for entry in self.scalars:
            if entry["group"] == group and name in entry["values"]:
                by_step[entry["step"]] = entry["values"][name]
        steps = sorted(by_step)
        return steps, [by_step[s] for s in steps]

    def names(self, group: str) -> list[str]:
        """The scalar names logged in ``group``, in order of first appearance."""
        seen: dict[str, None] = {}
        for entry in self.scalars:
            if entry["group"] == group:
                seen.update(dict.fromkeys(entry["values"]))
        return list(seen)


def read_run(path: str | Path) -> RunFiles:
    """Read what a run directory holds.

    Raises:
        AttncoachError: the path is not a run directory, or its config.yaml cannot be read.
    """
    run = RunDir.existing(path)
    config = _read_yaml(run.config)
    files = RunFiles(run, run.path.resolve().name, config)
    files.metrics = _read_json(run.metrics, files.missing, "metrics.json: the run has not finished (no test metrics)")
    if run.scalars.is_file():
        files.scalars = read_scalars(run.scalars)
    else:
        files.missing.append(
            "scalars.jsonl: no logged scalars (a run from before it existed); curves from metrics.json"
        )
    files.decisions = read_jsonl(run.coach_log)
    if run.examples.is_file():
        files.examples = read_jsonl(run.examples)
    elif _section_value(config, "curriculum", "record", True):
        files.missing.append("examples.jsonl: no learning record (it is written when the run finishes)")
    if run.subnets.is_file():
        files.subnets = _read_json(run.subnets, files.missing, "subnets.json: unreadable")
    return files


def read_scalars(path: Path) -> list[dict[str, Any]]:
    """The entries of a ``scalars.jsonl`` (see :mod:`attncoach.train.history`); malformed lines are skipped."""
    out = []
    for entry in read_jsonl(path):
        step, group, values = entry.get("step"), entry.get("group"), entry.get("values")
        if isinstance(step, int) and isinstance(group, str) and isinstance(values, dict):
            clean = {str(k): _number(v) for k, v in values.items()}
            out.append({"step": step, "group": group, "values": clean})
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file; an absent file is empty, a broken line is skipped."""
    if not path.is_file():
        return []
    rows = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise AttncoachError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise AttncoachError(f"{path} does not hold a run configuration (a mapping of sections)")
    return data


def _read_json(path: Path, missing: list[str], note: str) -> dict[str, Any] | None:
    if not path.is_file():
        missing.append(note)
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        missing.append(f"{path.name}: damaged (not JSON)")
        return None
    if not isinstance(data, dict):
        missing.append(f"{path.name}: damaged (not a JSON object)")
        return None
    return data


def _section_value(config: dict[str, Any], section: str, key: str, default: Any) -> Any:
    value = config.get(section)
    return value.get(key, default) if isinstance(value, dict) else default
