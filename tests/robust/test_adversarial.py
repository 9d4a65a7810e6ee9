"""FGM, PGD and FreeLB: the perturbation they add and the gradients they leave, checked against a hand computation."""

from __future__ import annotations

import pytest
import torch

from attncoach.config import RobustConfig
from attncoach.errors import AttncoachError
from attncoach.models.classifier import TextClassifier
from attncoach.models.encoder import EncoderConfig
from attncoach.robust.adversarial import Adversary, make_adversary, normalized, project
from attncoach.tasks import TASKS

TASK = TASKS["text_classification"]()


def _model() -> TextClassifier:
    torch.manual_seed(0)
    enc = EncoderConfig(dim=16, layers=1, heads=2, ffn_dim=32, vocab_size=40, max_position=8, pad_id=0, dropout=0.0)
    model = TextClassifier(enc, num_labels=3, head_dropout=0.0)
    return model.eval()  # no dropout: every pass of the same input gives the same loss


def _batch() -> dict[str, torch.Tensor]:
    ids = torch.tensor([[5, 9, 12, 3, 0, 0], [7, 7, 21, 30, 11, 2], [4, 18, 0, 0, 0, 0]])
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": torch.tensor([0, 2, 1])}


def _grads(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters()]


def _loss_at(
    model: torch.nn.Module, batch: dict, delta: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The loss with ``delta`` added to the word embeddings, and the gradient there (by hand, no adversary)."""
    seen = {}

    def hook(module, inputs, output):
        out = output if delta is None else output + delta
        out.retain_grad()
        seen["e"] = out
        return out

    handle = model.encoder.embeddings.word.register_forward_hook(hook)
    try:
        loss = TASK.step(model, batch).loss
    finally:
        handle.remove()
    return loss, seen["e"]


def _reference(model, batch, deltas, weights):
    """Parameter gradients of the clean loss plus ``weights[i]`` x the loss at ``deltas[i]``."""
    model.zero_grad()
    loss, _ = _loss_at(model, batch, None)
    loss.backward()
    for delta, w in zip(deltas, weights):
        (_loss_at(model, batch, delta)[0] * w).backward()
    return _grads(model)


def _clean_gradient(model, batch) -> torch.Tensor:
    model.zero_grad()
    loss, e = _loss_at(model, batch, None)
    loss.backward()
    model.zero_grad()
    return e.grad.detach()


def _train_step(
    method: str, **cfg
) -> tuple[Adversary, TextClassifier, dict, list[torch.Tensor], list[torch.Tensor], float]:
    """One clean + adversarial step; returns the adversary, model, batch, the deltas it used, the gradients, adv loss."""
    model, batch = _model(), _batch()
    adversary = Adversary(RobustConfig(method=method, **cfg), start_step=0)
    adversary.attach(model)
    used: list[torch.Tensor] = []

    def loss_of(part):
        used.append(adversary._delta.detach().clone())
        return TASK.step(model, part).loss

    model.zero_grad()
    with adversary.watch():
        TASK.step(model, batch).loss.backward()
    adv_loss = adversary.attack(loss_of, batch, scale=1.0)
    adversary.detach()
    return adversary, model, batch, used, _grads(model), adv_loss


def _close(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.allclose(x, y, atol=1e-6, rtol=1e-4) for x, y in zip(a, b, strict=True))


def test_fgm_steps_epsilon_along_the_normalised_clean_gradient_and_adds_its_gradients():
    _, model, batch, used, grads, adv_loss = _train_step("fgm", epsilon=0.5, weight=0.7)
    mask = batch["attention_mask"].bool().unsqueeze(-1)
    g = _clean_gradient(model, batch)
    expected = 0.5 * (g * mask) / (g * mask).flatten(1).norm(dim=1).view(-1, 1, 1)
    assert len(used) == 1 and torch.allclose(used[0], expected, atol=1e-7)
    assert torch.allclose(used[0].flatten(1).norm(dim=1), torch.full((3,), 0.5))  # epsilon per example
    assert (used[0][~mask.expand_as(used[0])] == 0).all(), "padding positions are never perturbed"
    assert _close(grads, _reference(model, batch, used, [0.7]))
    clean = TASK.step(model, batch).loss.item()
    assert adv_loss > clean, "a step along the gradient raises the loss"


def test_pgd_keeps_the_perturbation_in_the_ball_and_only_the_last_pass_in_the_gradients():
    _, model, batch, used, grads, adv_loss = _train_step("pgd", epsilon=0.4, steps=3, step_size=0.3)
    assert len(used) == 3
    for delta in used:
        assert (delta.flatten(1).norm(dim=1) <= 0.4 + 1e-5).all()
    assert not torch.allclose(used[0], used[-1]), "the inner steps moved the perturbation"
    assert _close(grads, _reference(model, batch, [used[-1]], [1.0]))
    assert adv_loss == pytest.approx(_loss_at(model, batch, used[-1])[0].item(), rel=1e-5)


def test_pgd_ascends_from_the_gradient_at_the_previous_perturbation():
    _, model, batch, used, _, _ = _train_step("pgd", epsilon=1.0, steps=2, step_size=0.3)
    mask = batch["attention_mask"].bool().unsqueeze(-1)
    model.zero_grad()
    loss, e = _loss_at(model, batch, used[0])
    loss.backward()
    expected = project(used[0] + 0.3 * normalized(e.grad, mask), 1.0)
    assert torch.allclose(used[1], expected, atol=1e-6)


def test_freelb_keeps_the_mean_gradient_of_every_ascent_step():
    _, model, batch, used, grads, _ = _train_step("freelb", epsilon=0.6, steps=3, weight=1.0)
    assert len(used) == 3
    assert _close(grads, _reference(model, batch, used, [1 / 3] * 3))


def test_the_hook_changes_nothing_outside_a_step():
    adversary, model, batch, _, _, _ = _train_step("fgm")
    before = model(batch["input_ids"], batch["attention_mask"])
    adversary.attach(model)
    after = model(batch["input_ids"], batch["attention_mask"])  # evaluation: neither watching nor attacking
    assert torch.equal(before, after)


def test_the_attack_starts_at_its_step_and_by_default_after_the_warmup():
    assert make_adversary(RobustConfig(), warmup_steps=10) is None
    adversary = make_adversary(RobustConfig(method="pgd"), warmup_steps=10)
    assert adversary.start_step == 10 and not adversary.active(9) and adversary.active(10)
    assert make_adversary(RobustConfig(method="fgm", start_step=0), warmup_steps=10).active(0)
    assert adversary.step_size == pytest.approx(0.5)  # epsilon / steps


def test_a_model_without_an_embedding_table_is_refused_in_one_line():
    with pytest.raises(AttncoachError, match="has none"):
        Adversary(RobustConfig(method="fgm"), 0).attach(torch.nn.Linear(3, 3))
