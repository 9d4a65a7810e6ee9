"""Elastic inference: the member chosen for a budget, from measured latencies by batch size."""

from __future__ import annotations

import pytest

from attncoach.errors import AttncoachError
from attncoach.serve.budget import Choice, choose_member, latency_at
from attncoach.serve.served import MemberInfo, member_name

FULL = MemberInfo("full", 1000, {1: 4.0, 8: 6.0, 32: 20.0}, "torch")
HALF = MemberInfo("w0.5", 600, {1: 2.0, 8: 3.0, 32: 10.0}, "torch")
SMALL = MemberInfo("w0.25-d0.5", 200, {1: 1.0, 8: 1.5, 32: 4.0}, "torch")
FAMILY = [FULL, HALF, SMALL]


def test_latency_between_and_beyond_the_measured_batches():
    assert latency_at(FULL, 8) == 6.0  # measured
    assert latency_at(FULL, 20) == pytest.approx(6.0 + (20 - 8) / (32 - 8) * (20.0 - 6.0))  # interpolated
    assert latency_at(FULL, 64) == pytest.approx(40.0)  # two batches of 32
    assert latency_at(MemberInfo("x", 1, {4: 3.0, 16: 5.0}, "torch"), 1) == 3.0  # below: the nearest measured


@pytest.mark.parametrize(
    "batch, budget, member, met",
    [
        (1, 100.0, "full", True),
        (1, 4.0, "full", True),  # exactly the measured latency meets the budget
        (1, 3.9, "w0.5", True),
        (32, 15.0, "w0.5", True),
        (32, 9.9, "w0.25-d0.5", True),
        (20, 2.0, "w0.25-d0.5", False),  # 2.75 ms: nothing fits, the smallest answers
        (1, 1e-9, "w0.25-d0.5", False),
    ],
)
def test_the_largest_member_within_the_budget(batch, budget, member, met):
    choice = choose_member(FAMILY, batch, budget_ms=budget)
    assert (choice.member, choice.budget_met) == (member, met)
    assert choice.estimated_ms == pytest.approx(latency_at({m.name: m for m in FAMILY}[member], batch))


def test_named_member_and_default():
    assert choose_member(FAMILY, 8, name="w0.5").member == "w0.5"
    assert choose_member(FAMILY, 8, name="w0.5").budget_met is None
    assert choose_member(FAMILY, 8, budget_ms=1.0, name="w0.5") == Choice("w0.5", 3.0, False)  # named: reported only
    assert choose_member(FAMILY, 8, budget_ms=100.0, name="w0.5").budget_met is True
    assert choose_member(FAMILY, 8) == choose_member(FAMILY, 8, budget_ms=None)
    assert choose_member(FAMILY, 8).member == "full"
    with pytest.raises(AttncoachError, match=r"unknown subnet 'w0.3'; this model serves: full, w0.5, w0.25-d0.5$"):
        choose_member(FAMILY, 8, name="w0.3")


def test_member_names():
    assert member_name(1.0, 1.0) == "full"
    assert member_name(0.5, 1.0) == "w0.5"
    assert member_name(1.0, 0.5) == "d0.5"
    assert member_name(0.25, 0.5, 0.5) == "w0.25-f0.5-d0.5"
