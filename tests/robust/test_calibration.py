"""Temperature scaling: the fit recovers a known temperature, never raises the val NLL, and copes with degenerate inputs."""

from __future__ import annotations

import pytest
import torch

from attncoach.errors import AttncoachError
from attncoach.robust.calibration import T_MAX, T_MIN, calibration_effect, fit_temperature, nll


def _sampled(temperature: float, n: int = 2000, classes: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits, and gold classes drawn from softmax(logits / temperature): ``temperature`` calibrates them."""
    generator = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(n, classes, generator=generator)
    gold = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator).squeeze(1)
    return logits, gold


@pytest.mark.parametrize("temperature", [0.5, 2.0, 4.0])
def test_recovers_a_known_temperature(temperature):
    logits, gold = _sampled(temperature)
    fitted = fit_temperature(logits, gold)
    assert fitted == pytest.approx(temperature, rel=0.08)
    effect = calibration_effect(logits, gold, fitted)
    assert effect["nll"][1] < effect["nll"][0] and effect["ece"][1] < effect["ece"][0] / 2


@pytest.mark.parametrize("seed", range(5))
def test_never_raises_the_nll(seed):
    generator = torch.Generator().manual_seed(seed)
    n = [1, 3, 50, 400, 7][seed]
    logits = torch.randn(n, 3, generator=generator) * [0.1, 1.0, 5.0, 2.0, 30.0][seed]
    gold = torch.randint(0, 3, (n,), generator=generator)
    fitted = fit_temperature(logits, gold)
    assert T_MIN <= fitted <= T_MAX
    assert nll(logits, gold, fitted) <= nll(logits, gold)
    assert fit_temperature(logits, gold) == fitted  # deterministic


def test_degenerate_inputs():
    alike = torch.zeros(12, 3)
    assert fit_temperature(alike, torch.arange(12) % 3) == 1.0  # no temperature changes anything
    assert fit_temperature(torch.empty(0, 3), torch.empty(0, dtype=torch.long)) == 1.0
    logits = torch.randn(60, 3, generator=torch.Generator().manual_seed(1))
    assert fit_temperature(logits, logits.argmax(-1)) == T_MIN  # always right: as sharp as allowed
    calibrated = _sampled(1.0)
    assert fit_temperature(*calibrated) == pytest.approx(1.0, abs=0.08)


def test_bad_inputs():
    with pytest.raises(AttncoachError, match="not finite"):
        fit_temperature(torch.tensor([[0.0, float("nan")]]), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        fit_temperature(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="gold classes"):
        fit_temperature(torch.zeros(2, 2), torch.tensor([0, 2]))
