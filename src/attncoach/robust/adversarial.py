"""Adversarial training in embedding space: FGM, PGD and FreeLB, always beside the clean loss.

A perturbation ``delta`` (B, T, D) is added to the output of the model's input embedding
table (token ids for text, item ids for ``next_item``: ``model.encoder.embeddings.word``),
before positions, LayerNorm and dropout. Each example's perturbation is bounded in L2 norm
over its real positions by ``epsilon``; every ascent step moves it by ``step_size`` along
the normalised gradient of the loss with respect to it.

- **FGM** (Miyato et al. 2017): one step of length epsilon from the clean gradient; one extra
  forward and backward per step (about 2x the cost of plain training).
- **PGD** (Madry et al. 2018): ``steps`` projected ascent steps, the first from the clean
  gradient; only the last perturbed pass adds to the parameters' gradients (``steps`` extra
  forward/backward passes).
- **FreeLB** (Zhu et al. 2020): ``steps`` ascent steps whose parameter gradients are all kept,
  each weighted ``1 / steps`` ("free" adversarial training); the first perturbation comes from
  the clean gradient instead of random noise, so the run stays deterministic.

The clean loss is always trained on too (Zhu et al.'s users lost accuracy without it), with
the adversarial loss weighted ``weight`` beside it, and the adversary starts at ``start_step``
(after the LR warmup by default: adversarial steps from random weights made FreeLB runs NaN).

Example:
    >>> adversary = Adversary(RobustConfig(method="fgm"), start_step=0)  # doctest: +SKIP
    >>> adversary.attach(model)                                          # doctest: +SKIP
    >>> with adversary.watch():                                          # doctest: +SKIP
    ...     loss = task.step(model, batch).loss; loss.backward()
    >>> adv_loss = adversary.attack(lambda b: task.step(model, b).loss, batch, scale=1.0)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from attncoach.config import RobustConfig
from attncoach.errors import AttncoachError

METHODS = ("fgm", "pgd", "freelb")


def input_embedding(model: nn.Module) -> nn.Embedding | None:
    """The embedding table whose output the adversary perturbs, or None when the model has none."""
    embeddings = getattr(getattr(model, "encoder", None), "embeddings", None)
    word = getattr(embeddings, "word", None)
    return word if isinstance(word, nn.Embedding) else None


def per_example_norm(x: Tensor) -> Tensor:
    """L2 norm of each example of ``x`` (B, ...) over all its other dimensions, shaped to broadcast."""
    return x.flatten(1).norm(dim=1).view(-1, *([1] * (x.dim() - 1)))


def normalized(g: Tensor, mask: Tensor) -> Tensor:
    """``g`` on the real positions (``mask`` (B, T, 1)), scaled to unit L2 norm per example."""
    g = g * mask
    return g / per_example_norm(g).clamp_min(1e-12)


def project(delta: Tensor, epsilon: float) -> Tensor:
    """``delta`` shrunk, example by example, into the L2 ball of radius ``epsilon``."""
    norm = per_example_norm(delta)
    return delta * torch.clamp(epsilon / norm.clamp_min(1e-12), max=1.0)


class Adversary:
    """Perturbs a model's input embeddings against its loss; see the module docstring.

    Args:
        cfg: the ``robust`` config section (method, epsilon, steps, step_size, weight).
        start_step: the first training step trained adversarially.
    """

    def __init__(self, cfg: RobustConfig, start_step: int) -> None:
        if cfg.method not in METHODS:
            raise ValueError(f"unknown adversarial method {cfg.method!r}: use one of {', '.join(METHODS)}")
        self.method = cfg.method
        self.epsilon = cfg.epsilon
        self.steps = 1 if cfg.method == "fgm" else cfg.steps
        self.step_size = cfg.step_size if cfg.step_size is not None else cfg.epsilon / self.steps
        self.weight = cfg.weight
        self.start_step = start_step
        self._watching = False
        self._clean: list[Tensor] = []  # zero perturbations of this step's clean passes: their grads
        self._delta: Tensor | None = None  # the perturbation added while attacking
        self._handle: Any = None

    def attach(self, model: nn.Module) -> None:
        """Hook the model's input embedding; outside :meth:`watch` and :meth:`attack` the hook does nothing.

        Raises:
            AttncoachError: the model has no input embedding table to perturb.
        """
        table = input_embedding(model)
        if table is None:
            raise AttncoachError(
                f"robust.method {self.method} perturbs input embeddings, and this model has none "
                "(model.encoder.embeddings.word): set robust.method: none"
            )
        self.detach()
        self._handle = table.register_forward_hook(self._hook)

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def active(self, step: int) -> bool:
        """Whether training step ``step`` (0-based) is trained adversarially."""
        return step >= self.start_step

    def _hook(self, module: nn.Module, inputs: Any, output: Tensor) -> Tensor | None:
        if self._delta is not None:
            return output + self._delta.to(output.dtype)
        if self._watching and torch.is_grad_enabled():
            zero = torch.zeros_like(output, requires_grad=True)  # its grad: the loss's gradient at the embeddings
            self._clean.append(zero)
            return output + zero
        return None

    @contextlib.contextmanager
    def watch(self) -> Iterator[None]:
        """Around the clean forward and backward pass(es) of a step: records the gradient at the embeddings."""
        self._clean, self._watching = [], True
        try:
            yield
        finally:
            self._watching = False

    def _clean_gradient(self, batch_size: int) -> Tensor:
        """The clean passes' gradient at the embeddings for the whole batch.

        The clean batch may have gone through in parts (the coach's two noise halves) and
        other passes may follow it (the sub-nets of a supernet step): the first passes that
        cover ``batch_size`` examples are the full model's clean ones.
        """
        parts, rows = [], 0
        for zero in self._clean:
            if rows >= batch_size:
                break
            if zero.grad is None:
                raise RuntimeError("the clean pass was not backpropagated before the attack")
            parts.append(zero.grad)
            rows += zero.shape[0]
        if rows != batch_size:
            raise RuntimeError(f"the clean passes covered {rows} examples, not the batch's {batch_size}")
        return torch.cat(parts).detach()

    def attack(self, loss_of: Callable[[dict[str, Tensor]], Tensor], batch: dict[str, Tensor], scale: float) -> float:
        """The adversarial passes after the clean one; their gradients add to the parameters'.

        Args:
            loss_of: the mean loss of a batch through the model (a fresh forward pass).
            batch: the batch the clean pass trained on, on the model's device.
            scale: multiplies every loss before its backward (1 / gradient accumulation).

        Returns:
            The adversarial loss (of the last perturbed pass; FreeLB: the mean over its passes).
        """
        mask = batch["attention_mask"].to(torch.bool).unsqueeze(-1)  # (B, T, 1)
        g = self._clean_gradient(mask.shape[0])
        self._clean = []
        try:
            if self.method == "fgm":
                return self._fgm(loss_of, batch, scale, g, mask)
            if self.method == "pgd":
                return self._pgd(loss_of, batch, scale, g, mask)
            return self._freelb(loss_of, batch, scale, g, mask)
        finally:
            self._delta = None

    def _fgm(self, loss_of: Callable, batch: dict[str, Tensor], scale: float, g: Tensor, mask: Tensor) -> float:
        self._delta = self.epsilon * normalized(g, mask)
        loss = loss_of(batch)
        (loss * (scale * self.weight)).backward()
        return loss.item()

    def _pgd(self, loss_of: Callable, batch: dict[str, Tensor], scale: float, g: Tensor, mask: Tensor) -> float:
        delta = torch.zeros_like(g)
        for k in range(self.steps):
            delta = project(delta + self.step_size * normalized(g, mask), self.epsilon).detach()
            last = k == self.steps - 1
            self._delta = delta if last else delta.requires_grad_(True)
            loss = loss_of(batch)
            if last:
                (loss * (scale * self.weight)).backward()
            else:  # the ascent direction only: no parameter gradient from the inner steps
                (g,) = torch.autograd.grad(loss, self._delta)
        return loss.item()

    def _freelb(self, loss_of: Callable, batch: dict[str, Tensor], scale: float, g: Tensor, mask: Tensor) -> float:
        delta = torch.zeros_like(g)
        total = 0.0
        for _ in range(self.steps):
            delta = project(delta + self.step_size * normalized(g, mask), self.epsilon).detach().requires_grad_(True)
            self._delta = delta
            loss = loss_of(batch)
            (loss * (scale * self.weight / self.steps)).backward()  # parameter gradients of every ascent step
            g = delta.grad.detach()
            total += loss.item()
        return total / self.steps


def make_adversary(cfg: RobustConfig, warmup_steps: int) -> Adversary | None:
    """The adversary of the ``robust`` section, or None for ``method: none``; by default it starts after the warmup."""
    if cfg.method == "none":
        return None
    start = cfg.start_step if cfg.start_step is not None else warmup_steps
    return Adversary(cfg, start)


__all__ = ["METHODS", "Adversary", "input_embedding", "make_adversary", "normalized", "project"]
