"""Noise-robust switches: small-loss selection's schedule, the suspect filter, and the weighted loss they drive."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attncoach.curriculum.noisy import SmallLossSchedule, SuspectFilter
from attncoach.curriculum.record import LearningRecord
from attncoach.tasks.base import class_step, label_margin, loss_weights


def test_small_loss_schedule_ramps_the_forget_rate_then_holds():
    schedule = SmallLossSchedule(0.4, ramp_steps=10)
    assert [schedule.keep(s) for s in (0, 5, 10, 100)] == pytest.approx([1.0, 0.8, 0.6, 0.6])
    assert SmallLossSchedule(0.3, ramp_steps=0).keep(0) == pytest.approx(0.7)


def test_loss_weights_keep_the_smallest_losses_and_multiply_given_weights():
    losses = torch.tensor([0.5, 3.0, 0.1, 2.0, 0.2])
    assert loss_weights(losses, None, 1.0) is None
    assert loss_weights(losses, None, 0.6).tolist() == [1.0, 0.0, 1.0, 0.0, 1.0]
    given = torch.tensor([0.0, 1.0, 1.0, 1.0, 0.5])
    assert loss_weights(losses, given, 0.6).tolist() == [0.0, 0.0, 1.0, 0.0, 0.5]
    assert loss_weights(losses, None, 0.01).sum() == 1, "at least one example is kept"


def test_class_step_loss_is_the_weighted_mean_and_its_margins_are_right():
    torch.manual_seed(0)
    logits = torch.randn(6, 3, requires_grad=True)
    gold = torch.tensor([0, 1, 2, 0, 1, 2])
    plain = class_step(logits, gold, 0.1, None, None)
    assert plain.loss.item() == pytest.approx(F.cross_entropy(logits, gold, label_smoothing=0.1).item())
    weights = torch.tensor([1.0, 0.0, 1.0, 0.5, 0.0, 1.0])
    weighted = class_step(logits, gold, 0.0, None, None, weights=weights)
    per = F.cross_entropy(logits, gold, reduction="none")
    assert weighted.loss.item() == pytest.approx(((per * weights).sum() / weights.sum()).item(), rel=1e-6)
    weighted.loss.backward()
    assert logits.grad[1].abs().sum() == 0 and logits.grad[0].abs().sum() > 0, "a weight-0 example gets no gradient"
    selected = class_step(logits.detach(), gold, 0.0, None, None, keep_smallest=0.5)
    kept = torch.argsort(per.detach())[:3]
    assert selected.loss.item() == pytest.approx(per.detach()[kept].mean().item(), rel=1e-6)
    assert torch.equal(selected.losses, per.detach()), "the record still sees every example's loss"
    assert torch.allclose(plain.margin, label_margin(logits.detach(), gold))


def _record(margins: list[float]) -> LearningRecord:
    n = len(margins)
    record = LearningRecord(n)
    record.update(np.arange(n), np.ones(n), np.zeros(n), np.full(n, 0.5), np.zeros(n), margins=np.array(margins))
    return record


def test_suspect_filter_chooses_after_the_warm_up_again_every_epoch_and_round_trips():
    chooser = SuspectFilter(5, fraction=0.4, weight=0.25, score="aum", start_step=4, every=3)
    assert chooser.weights(np.arange(5)) is None and not chooser.due(3)
    assert chooser.due(4)
    chooser.choose(4, _record([1.0, -2.0, 0.5, -1.0, 3.0]))
    assert chooser.weights(np.array([1, 0, 3])).tolist() == [0.25, 1.0, 0.25]
    assert not chooser.due(6) and chooser.due(7)
    chooser.choose(7, _record([-5.0, 2.0, 0.5, 1.0, 3.0]))  # the record changed its mind: 1 and 3 are back
    assert chooser.weights(np.arange(5)).tolist() == [0.25, 1.0, 0.25, 1.0, 1.0]
    other = SuspectFilter(5, fraction=0.4, weight=0.25, score="aum", start_step=4, every=3)
    other.load_state_dict(json.loads(json.dumps(chooser.state_dict())))
    assert other.chosen_at == 7 and np.array_equal(other.suspects, chooser.suspects)
