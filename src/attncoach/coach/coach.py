"""The coach: observes training signals, lets its policies adjust the knobs, explains each change.

The recipe calls :meth:`Coach.observe` after every step (before the optimizer applies it)
and after every evaluation, then applies the :class:`Knobs` (LR scale, accumulation,
dropout, weight decay) and acts on ``rollback`` / ``stop`` decisions. Every decision is
appended to ``coach.jsonl`` in the run directory, logged to TensorBoard under ``coach/``
and counted for the end-of-run summary. The knobs, each policy's state and the signal
tracker's EMAs are checkpointed, so a resumed run continues the same decisions.

Example:
    >>> coach = Coach(build_policies(["plateau"]), Knobs())      # doctest: +SKIP
    >>> coach.observe(signals)                                    # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import logging
import typing
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from attncoach.coach.policies import POLICIES, Decision, Knobs, Policy
from attncoach.coach.signals import Signals
from attncoach.config import is_finite
from attncoach.errors import AttncoachError

log = logging.getLogger("attncoach")

DEFAULT_POLICIES = ("lr_probe", "divergence_guard", "hypergradient_lr", "plateau", "regularisation")


def parse_policy_entry(entry: Any) -> tuple[str, dict[str, Any]]:
    """``"plateau"`` or ``{"plateau": {"patience": 3}}`` -> (name, parameters).

    Raises:
        AttncoachError: any other shape.
    """
    if isinstance(entry, str):
        return entry, {}
    if isinstance(entry, dict) and len(entry) == 1:
        ((name, params),) = entry.items()
        if params is None:
            return str(name), {}
        if isinstance(params, dict):
            return str(name), dict(params)
    raise AttncoachError(
        f"coach.policies entries must be a policy name or {{name: {{parameter: value}}}}, got {entry!r}"
    )


def build_policy(name: str, params: dict[str, Any]) -> Policy:
    """Instantiate a registered policy, refusing unknown names, parameters and wrong types."""
    if name not in POLICIES:
        raise AttncoachError(f"unknown coach policy '{name}' (known: {', '.join(sorted(POLICIES))})")
    cls = POLICIES[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key, value in params.items():
        if key not in fields:
            raise AttncoachError(f"coach policy {name} has no parameter '{key}' (parameters: {', '.join(fields)})")
        _check_type(name, key, hints[key], value)
    return cls(**params)


def _check_type(policy: str, key: str, hint: Any, value: Any) -> None:
    ok = {
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        bool: lambda v: isinstance(v, bool),
    }.get(hint, lambda v: True)(value)
    if not ok:
        raise AttncoachError(f"coach policy {policy}: parameter '{key}' must be {hint.__name__}, got {value!r}")
    if hint is float and not is_finite(value):
        raise AttncoachError(f"coach policy {policy}: parameter '{key}' must be a finite number, got {value!r}")


def build_policies(entries: Sequence[Any] | None) -> list[Policy]:
    """Policies from ``coach.policies`` (None = ``DEFAULT_POLICIES``); each name at most once."""
    parsed = [parse_policy_entry(e) for e in (DEFAULT_POLICIES if entries is None else entries)]
    names = [name for name, _ in parsed]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise AttncoachError(f"coach policy {repeated[0]} is listed twice in coach.policies")
    return [build_policy(name, params) for name, params in parsed]


class Coach:
    """Runs the policies over the signals and keeps the record of what they decided.

    Args:
        policies: built policies, in the order they observe.
        knobs: the initial knob values (from the config).
        log_path: ``coach.jsonl``; None keeps decisions in memory only.
        on_scalars: called as ``on_scalars(step, "coach", {knob: value})`` for every numeric
            decision (the recipe's ``log_scalars``, which fans them out to its loggers).
    """

    def __init__(
        self,
        policies: list[Policy],
        knobs: Knobs,
        log_path: Path | None = None,
        on_scalars: Callable[[int, str, dict[str, float]], None] | None = None,
    ):
        self.policies = policies
        self.knobs = knobs
        self.initial = dataclasses.replace(knobs)
        self.log_path = log_path
        self.on_scalars = on_scalars
        self.counts: Counter[str] = Counter()
        self.stop_reason: str | None = None
        self.rollback_step: int | None = None  # the step of the snapshot a rollback restores (set by the session)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.policies]

    def observe(self, signals: Signals) -> list[Decision]:
        """Let every policy look at ``signals``; record and return their decisions.

        A policy whose ``exclusive`` attribute is true (the LR probe while it probes) is the
        only one to look.
        """
        decisions: list[Decision] = []
        first = next((p for p in self.policies if p.exclusive), None)
        for policy in [first] if first is not None else self.policies:
            decisions.extend(policy.observe(signals, self.knobs))
        for decision in decisions:
            if decision.knob == "rollback":
                decision.new = self.rollback_step  # where the run goes back to
            self.record(decision)
        return decisions

    def record(self, decision: Decision) -> None:
        """Append one decision to coach.jsonl, the loggers and the counts."""
        self.counts[f"{decision.policy}:{decision.knob}"] += 1
        if decision.knob == "stop" and self.stop_reason is None:
            self.stop_reason = f"{decision.policy}: {decision.reason}"
        log.info(
            "coach step %d: %s %s %s -> %s (%s)",
            decision.step,
            decision.policy,
            decision.knob,
            decision.old,
            decision.new,
            decision.reason,
        )
        if self.log_path is not None:
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(decision.to_dict()) + "\n")
        if (
            self.on_scalars is not None
            and isinstance(decision.new, (int, float))
            and not isinstance(decision.new, bool)
        ):
            self.on_scalars(decision.step, "coach", {decision.knob: float(decision.new)})

    def summary(self) -> dict[str, Any]:
        """Decision counts per policy and knob, and each knob's start and end value."""
        knobs = {k: {"start": v, "end": getattr(self.knobs, k)} for k, v in self.initial.to_dict().items()}
        return {
            "policies": self.names,
            "decisions": dict(sorted(self.counts.items())),
            "knobs": knobs,
            "stop_reason": self.stop_reason,
        }

    def summary_lines(self) -> list[str]:
        """The summary as lines for the end of a run."""
        s = self.summary()
        total = sum(s["decisions"].values())
        lines = [f"coach: {total} decision(s) by {', '.join(s['policies'])}"]
        lines += [f"  {name}: {count}" for name, count in s["decisions"].items()]
        changed = [f"{k} {v['start']:g} -> {v['end']:g}" for k, v in s["knobs"].items() if v["start"] != v["end"]]
        lines.append("  knobs: " + (", ".join(changed) if changed else "unchanged"))
        if s["stop_reason"]:
            lines.append(f"  stopped: {s['stop_reason']}")
        return lines

    def state_dict(self) -> dict[str, Any]:
        return {
            "knobs": self.knobs.to_dict(),
            "initial": self.initial.to_dict(),
            "counts": dict(self.counts),
            "stop_reason": self.stop_reason,
            "policies": {p.name: p.state_dict() for p in self.policies},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.knobs = Knobs(**state["knobs"])
        self.initial = Knobs(**state["initial"])
        self.counts = Counter(state["counts"])
        self.stop_reason = state["stop_reason"]
        for policy in self.policies:
            if policy.name in state["policies"]:
                policy.load_state_dict(state["policies"][policy.name])

    def truncate_log(self, step: int) -> None:
        """Drop logged decisions after ``step`` (a resumed run takes them again)."""
        if self.log_path is None or not self.log_path.is_file():
            return
        kept = [
            line
            for line in self.log_path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line)["step"] <= step
        ]
        from attncoach.atomicfile import atomic_write_text

        atomic_write_text(self.log_path, "".join(f"{line}\n" for line in kept))
