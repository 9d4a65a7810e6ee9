"""Pacing functions: start at c0, grow monotonically, reach 1 at the horizon."""

from __future__ import annotations

import math

import pytest

from attncoach.curriculum.pacing import PACINGS


@pytest.mark.parametrize("name", sorted(PACINGS))
def test_every_pacing_starts_at_c0_grows_and_ends_at_one(name):
    pace = PACINGS[name]
    values = [pace(t / 100, start=0.2, steps=4) for t in range(0, 151)]
    assert values[0] == pytest.approx(0.2)
    assert all(b >= a - 1e-12 for a, b in zip(values, values[1:]))
    assert values[100] == pytest.approx(1.0) and values[150] == pytest.approx(1.0)
    assert all(0.2 - 1e-12 <= v <= 1.0 for v in values)


def test_sqrt_pacing_is_the_platanios_formula():
    c0, t = 0.01, 0.3
    assert PACINGS["sqrt"](t, start=c0, steps=4) == pytest.approx(math.sqrt(t * (1 - c0**2) + c0**2))
    assert PACINGS["linear"](t, start=c0, steps=4) == pytest.approx(t * (1 - c0) + c0)
    # the square root widens faster at first than linear pacing
    assert PACINGS["sqrt"](0.1, start=0.1, steps=4) > PACINGS["linear"](0.1, start=0.1, steps=4)


def test_step_pacing_jumps_in_equal_parts():
    levels = sorted({PACINGS["step"](t / 1000, start=0.2, steps=4) for t in range(0, 1001)})
    assert levels == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
