"""Answering one gathered batch of requests: a member for each, one model run per member.

Each request (an :class:`Ask`) names a member, gives a budget, or takes the default; the
budget is looked up at the batch size of the whole gathered batch (see
:mod:`attncoach.serve.budget`). Requests that chose the same member (and, for next-item
models, send the same kind of rows) run together; when such a run fails on bad input (an
unknown user, say), each of its requests runs alone, so only the faulty one gets the error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from attncoach.errors import AttncoachError
from attncoach.serve.budget import Choice, choose_member
from attncoach.serve.served import ServedModel

DEFAULT_K = 10


@dataclass(frozen=True)
class Ask:
    """One request, checked: ``rows`` are texts, users or histories (``kind``)."""

    kind: str  # "texts" | "users" | "histories"
    rows: list[Any]
    k: int = DEFAULT_K
    budget_ms: float | None = None
    subnet: str | None = None


@dataclass(frozen=True)
class Answer:
    """A request's rows answered: one prediction (or list of items) per row, and the member that gave them."""

    choice: Choice
    batch_size: int
    rows: list[Any]


def answer_batch(served: ServedModel, asks: Sequence[Ask]) -> list[Answer | AttncoachError]:
    """An :class:`Answer` for each ask, or the :class:`AttncoachError` its input caused, in order."""
    batch = sum(len(ask.rows) for ask in asks)
    results: list[Answer | AttncoachError | None] = [None] * len(asks)
    choices: dict[int, Choice] = {}
    groups: dict[tuple[str, str], list[int]] = {}
    for index, ask in enumerate(asks):
        try:
            choices[index] = choose_member(served.members, batch, ask.budget_ms, ask.subnet)
        except AttncoachError as exc:
            results[index] = exc
            continue
        groups.setdefault((choices[index].member, ask.kind), []).append(index)
    for (member, kind), indices in groups.items():
        outputs = _run_isolated(served, member, kind, [asks[i] for i in indices])
        for index, output in zip(indices, outputs):
            results[index] = output if isinstance(output, AttncoachError) else Answer(choices[index], batch, output)
    return results  # type: ignore[return-value]  # every index was filled


def _run_isolated(served: ServedModel, member: str, kind: str, asks: list[Ask]) -> list[Any]:
    """The rows of each ask from one run; after an input error, each ask alone."""
    try:
        return _run(served, member, kind, asks)
    except AttncoachError as exc:
        if len(asks) == 1:
            return [exc]
    outputs: list[Any] = []
    for ask in asks:
        try:
            outputs.extend(_run(served, member, kind, [ask]))
        except AttncoachError as exc:
            outputs.append(exc)
    return outputs


def _run(served: ServedModel, member: str, kind: str, asks: list[Ask]) -> list[list[Any]]:
    """One model run over every row of ``asks``, split back per ask."""
    rows = [row for ask in asks for row in ask.rows]
    if kind == "texts":
        out = served.predict(rows, member)
    else:
        k = max(ask.k for ask in asks)
        users, histories = (rows, None) if kind == "users" else (None, rows)
        out = served.recommend(users, histories, k, member)
    split, start = [], 0
    for ask in asks:
        part = out[start : start + len(ask.rows)]
        split.append(part if kind == "texts" else [items[: ask.k] for items in part])
        start += len(ask.rows)
    return split
