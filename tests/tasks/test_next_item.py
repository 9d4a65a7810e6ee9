"""Task next_item: windows, the loss of a step, and evaluation against a direct computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attncoach.tasks import TASKS
from attncoach.tasks.next_item import history_windows
from attncoach.tasks.ranking import ranking_metrics
from attncoach.train.settings import load_run_config
from tinydata import make_interactions, tiny_next_item_overrides


@pytest.mark.parametrize("length, max_length", [(2, 5), (6, 5), (7, 3), (20, 4), (9, 8)])
def test_windows_make_every_item_but_the_first_a_target_once(length, max_length):
    history = np.arange(1, length + 1)
    windows = history_windows(history, max_length)
    assert all(2 <= len(w) <= max_length + 1 for w in windows)
    targets = np.concatenate([w[1:] for w in windows])
    assert targets.tolist() == history[1:].tolist()
    assert history_windows(np.array([4]), 3) == []


@pytest.mark.parametrize("length, max_length, stride", [(20, 4, 1), (20, 4, 2), (50, 10, 3), (7, 3, 3), (3, 5, 2)])
def test_a_smaller_stride_covers_every_target_with_windows_ending_stride_apart(length, max_length, stride):
    history = np.arange(1, length + 1)
    windows = history_windows(history, max_length, stride)
    assert all(2 <= len(w) <= max_length + 1 for w in windows)
    assert set(np.concatenate([w[1:] for w in windows]).tolist()) == set(history[1:].tolist())
    ends = [int(w[-1]) for w in windows]
    assert ends[-1] == length and all(b - a == stride for a, b in zip(ends, ends[1:]))
    assert windows[0][0] == 1  # the oldest window starts at the history's first item
    assert len(windows) >= len(history_windows(history, max_length))


def test_window_stride_multiplies_the_training_windows(tmp_path):
    path = make_interactions(tmp_path / "i.tsv")
    task = TASKS["next_item"]()
    counts = {}
    for stride in (None, 2):
        over = tiny_next_item_overrides(path, tmp_path / f"r{stride}") + [f"data.window_stride={stride or 'null'}"]
        counts[stride] = task.build(load_run_config(None, over)).stats["training_windows"]
    assert counts[2] > counts[None]


@pytest.fixture
def built(tmp_path):
    cfg = load_run_config(None, tiny_next_item_overrides(make_interactions(tmp_path / "i.tsv"), tmp_path / "r"))
    task = TASKS["next_item"]()
    torch.manual_seed(0)
    data = task.build(cfg)
    return task, data, data.new_model(cfg.model).eval()


def test_build_counts_and_leave_one_out(built):
    task, data, model = built
    assert data.stats["users"] == 48 and data.stats["items"] == 30
    # 14 items per user: 12 to train on (11 targets), then val, then test
    assert data.stats["training_targets"] == 48 * 11
    val, test = data.splits["val"], data.splits["test"]
    assert len(val) == len(test) == 48
    assert all(len(t) == len(v) + 1 for v, t in zip(val.histories, test.histories))
    assert all(t[-1] == target for t, target in zip(test.histories, val.targets))
    # guessing the item frequencies: about log(30) on a near-uniform walk
    assert data.chance_loss == pytest.approx(np.log(30), abs=0.1)


def test_step_losses_are_the_mean_over_each_example_s_positions(built):
    task, data, model = built
    batch = data.splits["train"].batch([0, 1, 2])
    out = task.step(model, batch)
    with torch.no_grad():
        hidden = model(batch["input_ids"], batch["attention_mask"])
    for row in range(3):
        n = int(batch["attention_mask"][row].sum())
        with torch.no_grad():
            logits = model.item_logits(hidden[row, :n])
            expected = F.cross_entropy(logits, batch["targets"][row, :n] - 1)
        assert out.losses[row] == pytest.approx(float(expected), rel=1e-5)
        assert int(out.predicted[row]) == int(logits[-1].argmax()) + 1
    mask = batch["attention_mask"]
    with torch.no_grad():
        every_position = F.cross_entropy(model.item_logits(hidden[mask]), batch["targets"][mask] - 1)
    assert float(out.loss.detach()) == pytest.approx(float(every_position), rel=1e-5)  # the mean over all positions


def test_evaluate_ranks_among_all_unseen_items(built):
    task, data, model = built
    test = data.splits["test"]
    metrics = task.evaluate(model, test, data)
    ranks = []
    with torch.no_grad():
        for history, target in zip(test.histories, test.targets):
            ids = torch.as_tensor(history[-data.max_length :])[None]
            scores = model.scores(model(ids, ids != 0)[0, -1])
            others = [i for i in range(1, 31) if i != target and i not in set(history.tolist())]
            ranks.append(int((scores[others] > scores[target]).sum()))
    assert metrics["ndcg@10"] == pytest.approx(ranking_metrics(ranks)["ndcg@10"])
    assert metrics["hr@10"] == pytest.approx(ranking_metrics(ranks)["hr@10"])
    assert "hr@10_sampled" in metrics and metrics["n"] == 48
