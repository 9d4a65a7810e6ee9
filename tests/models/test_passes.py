"""pass_overhead: the fixed cost of a forward pass in tokens, measured once per model and sub-net."""

from __future__ import annotations

import math

import pytest
import torch

from attncoach.models import passes
from attncoach.models.classifier import TextClassifier
from attncoach.models.encoder import EncoderConfig, SubnetConfig
from attncoach.models.passes import MAX_OVERHEAD, MIN_OVERHEAD, PROBE_ROWS, PROBE_TOKENS, pass_overhead

CPU = torch.device("cpu")


def tiny() -> TextClassifier:
    return TextClassifier(EncoderConfig(vocab_size=40, dim=16, layers=2, heads=2, ffn_dim=32), num_labels=3)


def fake_probe(fixed: float, per_token: float, calls: list[int]):
    """A probe whose passes take ``fixed + rows * PROBE_TOKENS * per_token`` seconds, recording its rows."""

    def probe(model, device, rows):
        calls.append(rows)
        return fixed + rows * PROBE_TOKENS * per_token

    return probe


@pytest.mark.parametrize(
    ("fixed", "per_token", "expected"),
    [
        (64e-6, 1e-6, 64.0),  # exactly a power of two
        (300e-6, 1e-6, 256.0),  # rounded to the nearest power of two in log terms
        (5e-3, 1e-7, MAX_OVERHEAD),  # clamped
        (0.0, 1e-6, MIN_OVERHEAD),  # no fixed cost at all
        (-1e-5, 1e-6, MIN_OVERHEAD),  # noise made it negative
        (1e-4, 0.0, MAX_OVERHEAD),  # no measurable growth with the tokens
    ],
)
def test_the_overhead_is_the_fixed_cost_over_a_token_s_rounded_and_clamped(monkeypatch, fixed, per_token, expected):
    calls: list[int] = []
    monkeypatch.setattr(passes, "_probe_seconds", fake_probe(fixed, per_token, calls))
    assert pass_overhead(tiny(), CPU) == expected
    assert sorted(calls) == [1, PROBE_ROWS]


def test_it_is_measured_once_per_model_and_sub_net(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(passes, "_probe_seconds", fake_probe(32e-6, 1e-6, calls))
    model, other = tiny(), tiny()
    assert pass_overhead(model, CPU) == pass_overhead(model, CPU) == 32.0
    assert len(calls) == 2
    model.set_subnet(SubnetConfig(layers=(0,)))
    pass_overhead(model, CPU)
    assert len(calls) == 4  # another sub-net: measured again
    model.set_subnet(None)
    pass_overhead(model, CPU)
    pass_overhead(other, CPU)
    assert len(calls) == 6  # the full model was known; the other model was not


def test_a_real_measurement_is_a_power_of_two_and_leaves_the_model_as_it_was():
    model = tiny().train()
    before = [p.detach().clone() for p in model.parameters()]
    overhead = pass_overhead(model, CPU)
    assert MIN_OVERHEAD <= overhead <= MAX_OVERHEAD and math.log2(overhead).is_integer()
    assert model.training
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
