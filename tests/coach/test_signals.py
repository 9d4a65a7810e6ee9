"""Signals: the gradient-noise estimator, the hypergradient, the update ratio, attention entropy."""

from __future__ import annotations

import math

import pytest
import torch

from attncoach.coach.signals import Signals, SignalTracker, attention_entropy
from attncoach.models.classifier import TextClassifier
from attncoach.models.encoder import EncoderConfig


def test_noise_scale_recovers_a_known_critical_batch():
    """Per-example gradients g_i = G + noise with tr(Sigma) known: B_simple = tr(Sigma)/|G|^2."""
    torch.manual_seed(0)
    dim, batch = 50, 64
    true_grad = torch.full((dim,), 0.1)  # |G|^2 = 0.5
    sigma = 0.5  # per-coordinate std: tr(Sigma) = 50 * 0.25 = 12.5 -> B_simple = 25
    tracker = SignalTracker([], noise_ema=0.99)
    for _ in range(3000):
        samples = true_grad + sigma * torch.randn(batch, dim)
        half = samples[: batch // 2].mean(0)
        full = samples.mean(0)
        tracker.record_noise(float(half.pow(2).sum()), float(full.pow(2).sum()), batch)
    assert tracker.noise_scale() == pytest.approx(25.0, rel=0.2)


def test_hypergradient_and_update_ratio():
    w = torch.nn.Parameter(torch.tensor([1.0, 0.0]))
    frozen = torch.nn.Parameter(torch.tensor([0.0]))  # no gradient: counts as zero
    tracker = SignalTracker([w, frozen])
    assert tracker.hypergradient() is None
    tracker.before_step()
    with torch.no_grad():
        w -= torch.tensor([0.1, 0.0])  # the update went in -x
    ratio = tracker.after_step()
    assert ratio == pytest.approx(0.1 / 0.9)
    w.grad = torch.tensor([1.0, 0.0])  # the gradient still points +x: keep going that way
    assert tracker.hypergradient() == pytest.approx(1.0)
    assert tracker.hypergradient() is None, "a measured update is read once"
    tracker.before_step()
    with torch.no_grad():
        w -= torch.tensor([0.1, 0.0])
    tracker.after_step()
    w.grad = torch.tensor([-1.0, 0.0])  # the last step overshot
    assert tracker.hypergradient() == pytest.approx(-1.0)
    tracker.before_step()
    tracker.after_step()
    tracker.forget_update()
    assert tracker.hypergradient() is None


def test_loss_ema_ignores_non_finite_losses():
    tracker = SignalTracker([], ema=0.5)
    tracker.record_loss(1.0)
    tracker.record_loss(float("nan"))
    assert tracker.record_loss(3.0) == 2.0


def test_attention_entropy_is_log_length_for_uniform_attention():
    config = EncoderConfig(vocab_size=20, dim=8, layers=2, heads=2, ffn_dim=16, dropout=0.0, attention_dropout=0.0)
    model = TextClassifier(config, num_labels=2)
    for layer in model.encoder.layers:  # zero q and k: every token attends uniformly
        torch.nn.init.zeros_(layer.attn.qkv.weight)
        torch.nn.init.zeros_(layer.attn.qkv.bias)
    ids = torch.randint(1, 20, (3, 6))
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[1, 4:] = False
    entropy = attention_entropy(model, ids, mask)
    expected = (2 * math.log(6) * 6 + math.log(4) * 4) / 16  # mean over real query tokens
    assert entropy == pytest.approx([expected, expected], rel=1e-5)
    assert model.training, "the model's mode is restored"


def test_non_finite_signals_are_null_in_the_decision_log():
    import json

    from attncoach.coach.policies import POLICIES, Knobs

    policy = POLICIES["divergence_guard"]()
    [rollback, *_] = policy.observe(Signals(11, loss=float("nan"), loss_ema=1.0, nonfinite=True), Knobs())
    line = json.dumps(rollback.to_dict(), allow_nan=False)  # valid JSON: no NaN
    assert json.loads(line)["signals"]["loss"] is None and json.loads(line)["signals"]["nonfinite"] is True
    assert Signals(1, loss=float("inf"), grad_norm=2.0000001).values("loss", "grad_norm") == {
        "loss": None,
        "grad_norm": 2.0,
    }
