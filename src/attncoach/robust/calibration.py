"""Temperature scaling: one scalar ``T`` that divides a classifier's logits so that its probabilities
mean what they say (Guo et al. 2017, "On Calibration of Modern Neural Networks").

``T`` is fitted on the validation split by minimising the negative log-likelihood of
``softmax(logits / T)``; the argmax, and so every label and accuracy metric, is unchanged.
The NLL is convex in ``1 / T``, hence unimodal in ``log T``: a golden-section search over
``log T`` in ``[T_MIN, T_MAX]`` finds its minimum, deterministically and without a learning rate.

Example:
    >>> import torch
    >>> logits = torch.tensor([[4.0, 0.0], [3.0, 0.0], [0.0, 2.0], [2.5, 0.0]])
    >>> gold = torch.tensor([0, 1, 1, 0])  # one confident mistake: the model is over-confident
    >>> t = fit_temperature(logits, gold)
    >>> t > 1, nll(logits, gold, t) < nll(logits, gold)
    (True, True)
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from attncoach.errors import AttncoachError
from attncoach.tasks.metrics import expected_calibration_error

T_MIN, T_MAX = 0.05, 20.0  # the temperatures searched: beyond them a model is degenerate, not miscalibrated
_GOLDEN = (math.sqrt(5) - 1) / 2
_ITERATIONS = 64  # shrinks the log T interval (6.0 wide) below 1e-12
_DIGITS = 4  # the fitted temperature is rounded to this many decimals (what calibration.json keeps)


def nll(logits: Tensor, gold: Tensor, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``gold`` under ``softmax(logits / temperature)``, in float64."""
    return float(F.cross_entropy(logits.double() / temperature, gold.long()))


def fit_temperature(logits: Tensor, gold: Tensor) -> float:
    """The temperature that minimises the NLL of ``softmax(logits / T)`` on ``(logits, gold)``.

    Args:
        logits: ``(N, C)`` class logits (of the validation split).
        gold: ``(N,)`` gold class ids.

    Returns:
        ``T`` in ``[T_MIN, T_MAX]``, rounded to 4 decimals; 1.0 when no temperature lowers the NLL
        (no examples, logits that are all alike, a model already calibrated), so the NLL never rises.

    Raises:
        ValueError: shapes that do not fit, or a gold class outside ``[0, C)``.
        AttncoachError: logits that are not finite (a diverged model).
    """
    logits, gold = _checked(logits, gold)
    if len(gold) == 0:
        return 1.0
    loss = lambda u: nll(logits, gold, math.exp(u))  # noqa: E731  # u = log T
    lo, hi = math.log(T_MIN), math.log(T_MAX)
    a, b = hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo)
    fa, fb = loss(a), loss(b)
    for _ in range(_ITERATIONS):
        if fa <= fb:  # the minimum lies in [lo, b]
            hi, b, fb = b, a, fa
            a = hi - _GOLDEN * (hi - lo)
            fa = loss(a)
        else:  # in [a, hi]
            lo, a, fa = a, b, fb
            b = lo + _GOLDEN * (hi - lo)
            fb = loss(b)
    temperature = round(min(max(math.exp((lo + hi) / 2), T_MIN), T_MAX), _DIGITS)
    return temperature if nll(logits, gold, temperature) < nll(logits, gold) else 1.0


def calibration_effect(logits: Tensor, gold: Tensor, temperature: float, bins: int = 15) -> dict[str, Any]:
    """NLL and expected calibration error before and after dividing ``logits`` by ``temperature``.

    Returns:
        ``{"nll": [before, after], "ece": [before, after]}``, rounded to 6 decimals.
    """
    logits, gold = _checked(logits, gold)
    out: dict[str, Any] = {"nll": [], "ece": []}
    for t in (1.0, temperature):
        probs = torch.softmax(logits.double() / t, dim=-1).numpy()
        out["nll"].append(round(nll(logits, gold, t), 6) if len(gold) else 0.0)
        out["ece"].append(round(expected_calibration_error(probs, gold.numpy(), bins), 6))
    return out


def _checked(logits: Tensor, gold: Tensor) -> tuple[Tensor, Tensor]:
    logits = torch.as_tensor(logits).detach().cpu().double()
    gold = torch.as_tensor(gold).detach().cpu().long()
    if logits.dim() != 2 or gold.dim() != 1 or len(logits) != len(gold):
        raise ValueError(f"logits must be (N, C) and gold (N,), not {tuple(logits.shape)} and {tuple(gold.shape)}")
    if len(gold) and (gold.min() < 0 or gold.max() >= logits.shape[1]):
        raise ValueError(f"gold classes must lie in [0, {logits.shape[1]})")
    if not torch.isfinite(logits).all():
        raise AttncoachError("the logits are not finite (NaN or infinite): no temperature can calibrate them")
    return logits, gold
