"""Training signals the coach reads, and the cheap tracker that computes them.

Per optimizer step: the loss and its EMA, the gradient norm, whether anything was
non-finite, the hypergradient (cosine between the current gradient and the previous
update, Baydin et al. 2018), the update-to-weight ratio, and every ``noise_every`` steps
the gradient noise scale ``B_simple = tr(Sigma) / |G|^2`` (McCandlish et al. 2018, from
the gradients of half a batch and of the whole batch, with separate EMAs of numerator and
denominator as their appendix A recommends). Per evaluation: the val metric and loss, the
generalisation gap (val loss - train loss EMA) and the attention entropy per layer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from attncoach.models.attention_maps import attention_maps


@dataclass
class Signals:
    """What the coach sees at one step or evaluation; ``None`` = not measured then."""

    step: int
    examples_seen: int = 0
    evaluated: bool = False  # True for the signals of an evaluation
    loss: float | None = None
    loss_ema: float | None = None
    grad_norm: float | None = None
    nonfinite: bool = False
    hypergradient: float | None = None  # cos(g_t, -update_{t-1}) in [-1, 1]
    update_ratio: float | None = None  # |update| / |weights| of the last step
    noise_scale: float | None = None  # B_simple, in examples
    batch_size: int | None = None  # examples per optimizer step (batch x accumulation)
    lr_schedule: float | None = None  # the schedule's LR multiplier for this step (warmup, decay)
    chance_loss: float | None = None  # training loss of the best constant prediction (class frequencies)
    val_metric: float | None = None
    val_loss: float | None = None
    best_val_metric: float | None = None
    gap: float | None = None  # val loss - train loss EMA
    attention_entropy: list[float] | None = None  # mean entropy per layer, nats

    def values(self, *names: str) -> dict[str, Any]:
        """The named signals, rounded for the decision log (a NaN or infinite value is None: JSON null)."""
        out = {}
        for name in names:
            value = getattr(self, name)
            if isinstance(value, float):
                value = round(value, 6) if math.isfinite(value) else None
            out[name] = value
        return out


def _flat_sq_norm(tensors: Iterable[Tensor]) -> float:
    return float(sum(t.detach().float().pow(2).sum() for t in tensors))


class SignalTracker:
    """Keeps the running quantities behind :class:`Signals` (state in ``state_dict``).

    Args:
        params: the trained parameters.
        ema: smoothing of the loss EMA.
        noise_ema: smoothing of the noise-scale numerator and denominator.
    """

    def __init__(self, params: list[torch.nn.Parameter], ema: float = 0.98, noise_ema: float = 0.95):
        self.params = params
        self.ema, self.noise_ema = ema, noise_ema
        self.loss_ema: float | None = None
        self.trace_ema: float | None = None  # EMA of tr(Sigma) estimates
        self.grad_sq_ema: float | None = None  # EMA of |G|^2 estimates
        self._previous: Tensor | None = None  # weights before the measured step, flat
        # minus the measured step's change of the weights (flat) and its squared norm
        self._last_update: tuple[Tensor, float] | None = None
        self._buffer: Tensor | None = None  # the reused flat copy of the weights before a measured step
        self._views: tuple[Tensor, list[Tensor]] | None = None  # a buffer and its per-parameter views

    def record_loss(self, loss: float) -> float | None:
        """Update the loss EMA with a finite loss; returns the EMA."""
        if math.isfinite(loss):
            self.loss_ema = loss if self.loss_ema is None else self.ema * self.loss_ema + (1 - self.ema) * loss
        return self.loss_ema

    def record_noise(self, half_sq: float, full_sq: float, batch: int) -> float | None:
        """Noise scale from |g|^2 of half a batch and of the whole batch of ``batch`` examples.

        With b = batch/2 and B = batch: |G|^2 ~ 2|g_B|^2 - |g_b|^2 and
        tr(Sigma) ~ B (|g_b|^2 - |g_B|^2) (McCandlish et al. 2018, appendix A).
        """
        if not (math.isfinite(half_sq) and math.isfinite(full_sq)):
            return self.noise_scale()
        grad_sq, trace = 2 * full_sq - half_sq, batch * (half_sq - full_sq)
        a = self.noise_ema
        self.grad_sq_ema = grad_sq if self.grad_sq_ema is None else a * self.grad_sq_ema + (1 - a) * grad_sq
        self.trace_ema = trace if self.trace_ema is None else a * self.trace_ema + (1 - a) * trace
        return self.noise_scale()

    def noise_scale(self) -> float | None:
        """The current B_simple estimate (None until both EMAs are positive)."""
        if self.grad_sq_ema is None or self.grad_sq_ema <= 0 or self.trace_ema is None or self.trace_ema <= 0:
            return None
        return self.trace_ema / self.grad_sq_ema

    @torch.no_grad()
    def _flat(self) -> Tensor:
        """The parameters as one float vector, written into a buffer kept between measurements.

        (A model of millions of weights is not reallocated at every measurement; parameters
        that are not float32 are concatenated into a new float vector instead.)
        """
        parts = [p.detach().reshape(-1) for p in self.params]
        if any(t.dtype != torch.float32 for t in parts):
            return torch.cat(parts).float()
        size = sum(t.numel() for t in parts)
        buffer = self._buffer
        if buffer is None or buffer.numel() != size or buffer.device != parts[0].device:
            buffer = self._buffer = torch.empty(size, device=parts[0].device)
        return torch.cat(parts, out=buffer)

    def _pieces(self, flat: Tensor) -> list[Tensor]:
        """Views of a flat vector (laid out as :meth:`_flat`) shaped like each parameter (kept per buffer)."""
        if self._views is not None and self._views[0] is flat:
            return self._views[1]
        pieces, start = [], 0
        for p in self.params:
            pieces.append(flat[start : start + p.numel()].view(p.shape))
            start += p.numel()
        self._views = (flat, pieces)
        return pieces

    @torch.no_grad()
    def hypergradient(self) -> float | None:
        """cos(current gradient, minus the last update): > 0 means the last step was too short.

        Uses the measured update once (None until :meth:`after_step` measures another).
        Computed parameter by parameter (no flat copy of the gradients).
        """
        measured, self._last_update = self._last_update, None
        if measured is None:
            return None
        back, back_sq = measured  # minus the update, and its squared norm
        pairs = [(p.grad.float(), piece) for p, piece in zip(self.params, self._pieces(back)) if p.grad is not None]
        if not pairs:
            return None
        grads = [g for g, _ in pairs]
        dots = torch.stack([torch.vdot(g.reshape(-1), piece.reshape(-1)) for g, piece in pairs])
        dot, g_sq = torch.stack([dots.sum(), torch.stack(torch._foreach_norm(grads)).square().sum()]).tolist()
        if g_sq == 0 or back_sq == 0 or not math.isfinite(dot):
            return None
        return dot / math.sqrt(g_sq * back_sq)

    @torch.no_grad()
    def before_step(self) -> None:
        """Remember the weights, to measure the update the optimizer makes."""
        self._previous = self._flat()

    @torch.no_grad()
    def after_step(self) -> float | None:
        """The update-to-weight ratio of the step just taken."""
        if self._previous is None:
            return None
        before, self._previous = self._previous, None
        weights = [p.detach().float() for p in self.params]
        # minus the update, written over the weights before (read once, before the next measurement)
        back = self._pieces(before)
        torch._foreach_sub_(back, weights)
        weights_sq, back_sq = torch.stack(
            [torch.stack(torch._foreach_norm(weights)).square().sum(), torch.dot(before, before)]
        ).tolist()
        self._last_update = (before, back_sq)
        return math.sqrt(back_sq / weights_sq) if weights_sq > 0 else None

    def forget_update(self) -> None:
        """After a rollback or a skipped step there is no 'previous update' to compare with."""
        self._last_update = None
        self._previous = None

    def state_dict(self) -> dict[str, Any]:
        return {"loss_ema": self.loss_ema, "trace_ema": self.trace_ema, "grad_sq_ema": self.grad_sq_ema}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loss_ema, self.trace_ema, self.grad_sq_ema = state["loss_ema"], state["trace_ema"], state["grad_sq_ema"]


def grad_sq_norm(params: Iterable[torch.nn.Parameter]) -> float:
    """|grad|^2 over the parameters that have a gradient."""
    return _flat_sq_norm(p.grad for p in params if p.grad is not None)


@torch.no_grad()
def attention_entropy(model: torch.nn.Module, input_ids: Tensor, mask: Tensor) -> list[float]:
    """Mean entropy (nats) of the attention distributions of each active layer on one batch.

    From :func:`attncoach.models.attention_maps.attention_maps`, averaged over heads and real
    query tokens; low entropy = peaked attention.
    """
    real = mask.to(torch.bool)
    out = []
    for probs in attention_maps(model, input_ids, mask):  # (B, h, T, T) per layer
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1)  # (B, h, T)
        weights = real[:, None, :].expand_as(entropy).float()
        out.append(float((entropy * weights).sum() / weights.sum().clamp_min(1)))
    return out


def signals_dict(signals: Signals) -> dict[str, Any]:
    """All measured signals as plain data (None values dropped)."""
    return {k: v for k, v in dataclasses.asdict(signals).items() if v is not None}
