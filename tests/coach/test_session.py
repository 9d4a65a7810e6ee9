"""CoachSession and a curriculum: data shifts and rounds that are not the whole data."""

from __future__ import annotations

import torch

from attncoach.coach.session import CoachSession
from attncoach.config import CoachConfig


def _session(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Dropout(0.1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for group in optimizer.param_groups:
        group["base_lr"] = group["lr"]
    cfg = CoachConfig(enabled=True, policies=["divergence_guard", "regularisation"])
    return CoachSession(cfg, model, optimizer, 0.01, tmp_path / "coach.jsonl", total_steps=100, chance_loss=1.1)


def test_data_shift_restarts_the_loss_average_and_snapshots_the_new_start(tmp_path):
    session = _session(tmp_path)
    for step in range(1, 30):
        assert session.before_update(step, step * 8, 0.4, 1.0, 8) == "step"
    assert session.tracker.loss_ema is not None
    session.data_shift(30)
    assert session.tracker.loss_ema is None
    assert session.snapshot["step"] == session.newest["step"] == 30, "no rollback across the shift"
    assert session.before_update(31, 248, 1.0, 1.0, 8) == "step"
    assert session.tracker.loss_ema == 1.0


def test_a_selection_of_the_data_hides_the_loss_of_guessing_and_the_gap(tmp_path):
    session = _session(tmp_path)
    seen = []
    session.coach.observe = lambda signals: seen.append(signals) or []
    session.before_update(1, 8, 0.4, 1.0, 8)
    session.representative = False
    session.before_update(2, 16, 0.4, 1.0, 8)
    session.after_eval(2, 16, 0.5, 0.5, 0.9, None)
    assert seen[0].chance_loss == 1.1 and seen[1].chance_loss is None and seen[2].gap is None
