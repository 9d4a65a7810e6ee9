"""Elastic inference: which member answers a request, by name or by a latency budget.

A budget is milliseconds of model time for the batch the request runs in. The member chosen
is the first of the family (largest first) whose measured latency at that batch size meets
the budget; the latency at a batch size that was not measured is interpolated linearly
between the two measured sizes around it, and above the largest measured size it grows in
proportion (the batch runs in chunks of that size). When no member meets the budget the
smallest answers, and the choice says the budget was not met.

Example:
    >>> big = MemberInfo("full", 1000, {1: 4.0, 32: 20.0}, "torch")
    >>> small = MemberInfo("w0.5", 500, {1: 2.0, 32: 8.0}, "torch")
    >>> round(latency_at(big, 16), 2)  # between batch 1 (4 ms) and batch 32 (20 ms)
    11.74
    >>> choice = choose_member([big, small], batch=16, budget_ms=10.0)
    >>> choice.member, round(choice.estimated_ms, 2), choice.budget_met
    ('w0.5', 4.9, True)
    >>> choose_member([big, small], batch=64, budget_ms=10.0)  # 16 ms: the smallest, over budget
    Choice(member='w0.5', estimated_ms=16.0, budget_met=False)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from attncoach.errors import AttncoachError
from attncoach.serve.served import MemberInfo


@dataclass(frozen=True)
class Choice:
    """The member that answers, its estimated milliseconds at the batch size, and whether a budget was met
    (``None`` without a budget)."""

    member: str
    estimated_ms: float
    budget_met: bool | None = None


def latency_at(member: MemberInfo, batch: int) -> float:
    """Estimated milliseconds of one forward pass of ``batch`` rows, from the member's measured latencies."""
    measured = member.latency_ms
    if batch in measured:
        return measured[batch]
    sizes = sorted(measured)
    if batch < sizes[0]:
        return measured[sizes[0]]
    if batch > sizes[-1]:
        return measured[sizes[-1]] * batch / sizes[-1]
    above = next(size for size in sizes if size > batch)
    below = max(size for size in sizes if size < batch)
    fraction = (batch - below) / (above - below)
    return measured[below] + fraction * (measured[above] - measured[below])


def choose_member(
    members: Sequence[MemberInfo], batch: int, budget_ms: float | None = None, name: str | None = None
) -> Choice:
    """The member named ``name``, else the largest meeting ``budget_ms`` at ``batch``, else the default (the first).

    Args:
        members: the family, largest first (``members[0]`` is the default, the last the smallest).
        batch: rows in the batch the request runs in.
        budget_ms: milliseconds the member's forward pass may take at ``batch``; ``None`` = no budget.
        name: a member named explicitly; with ``budget_ms`` too, the choice says whether it meets it.

    Raises:
        AttncoachError: an unknown name (the error lists the members).
    """
    if name is not None:
        member = next((m for m in members if m.name == name), None)
        if member is None:
            raise AttncoachError(f"unknown subnet {name!r}; this model serves: {', '.join(m.name for m in members)}")
        estimated = latency_at(member, batch)
        return Choice(member.name, estimated, None if budget_ms is None else estimated <= budget_ms)
    if budget_ms is None:
        return Choice(members[0].name, latency_at(members[0], batch))
    for member in members:
        estimated = latency_at(member, batch)
        if estimated <= budget_ms:
            return Choice(member.name, estimated, True)
    smallest = members[-1]
    return Choice(smallest.name, latency_at(smallest, batch), False)
