"""Supernet training: the sandwich rule with in-place distillation.

Each optimizer step trains several sub-nets of one elastic model on the same batch
(slimmable networks, Yu et al. 2019; BigNAS, Yu et al. 2020):

1. the **largest** sub-net (the full model) learns from the gold labels;
2. the **smallest** and ``k`` **random** sub-nets learn from the largest one's soft labels
   (in-place distillation: the teacher is the same forward pass, detached), and optionally
   from its final hidden states (as DynaBERT distils hidden states, Hou et al. 2020).

Their gradients add up in ``.grad`` (one ``backward()`` per sub-net, so only one graph is
alive at a time) before the single clipped optimizer step; the sum is the gradient of the
sandwich loss ``L_largest + sum L_sub``. Depth is sampled too, so sub-nets that skip
layers (LayerDrop-style, Fan et al. 2019) are trained rather than hoped for.

Example:
    >>> sampler = SandwichSampler(ElasticSpace(), encoder_config, random_subnets=1, seed=0)  # doctest: +SKIP
    >>> [str(s) for s in sampler.sample(step=0)]                                         # doctest: +SKIP
    ['layers=all heads=all ffn=all', 'layers=0 heads=1,1 ffn=128,128', 'layers=0,1 ...']
"""

from __future__ import annotations

import contextlib
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from attncoach.elastic.space import ElasticSpace, subnet_for
from attncoach.models.encoder import EncoderConfig, SubnetConfig
from attncoach.tasks.base import StepOut, Task


class SubnetSampler(ABC):
    """Chooses the sub-nets that train at a step. The first one is the distillation teacher.

    Samplers are pure functions of ``(seed, step)``, so a resumed run draws exactly the
    sub-nets an uninterrupted one would; ``state_dict`` exists for samplers that need more.
    """

    @abstractmethod
    def sample(self, step: int) -> list[SubnetConfig]:
        """The sub-nets to train at ``step``; the first is the teacher (the full model)."""

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint (none for stateless samplers)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""


class SandwichSampler(SubnetSampler):
    """Largest + smallest + ``random_subnets`` random sub-nets of the space, every step.

    Args:
        space: the widths and depths to train.
        config: the full model's encoder config.
        random_subnets: how many random sub-nets besides the two extremes.
        seed: the run's seed; draws depend only on ``(seed, step)``.
    """

    def __init__(self, space: ElasticSpace, config: EncoderConfig, random_subnets: int = 1, seed: int = 0):
        self.space, self.config = space, config
        self.random_subnets = random_subnets
        self.seed = seed
        self.smallest = subnet_for(config, space.widths[0], space.depths[0], space.neuron_widths[0])

    def sample(self, step: int) -> list[SubnetConfig]:
        rng = np.random.default_rng([self.seed, step, 0x5A4D])
        return [SubnetConfig(), self.smallest, *(self._random(rng) for _ in range(self.random_subnets))]

    def _random(self, rng: np.random.Generator) -> SubnetConfig:
        space, cfg = self.space, self.config
        depth = float(rng.choice(space.depths))
        layers = subnet_for(cfg, 1.0, depth).layers
        if not space.per_layer:
            width = float(rng.choice(space.widths))
            ffn = float(rng.choice(space.ffn_widths)) if space.ffn_widths is not None else width
            return subnet_for(cfg, width, depth, ffn)
        # Mix'n'Match: every layer its own width (only kept layers matter, all get a value)
        widths = rng.choice(space.widths, size=cfg.layers)
        ffn_widths = rng.choice(space.ffn_widths, size=cfg.layers) if space.ffn_widths is not None else widths
        heads = tuple(max(1, round(float(w) * cfg.heads)) for w in widths)
        ffn = tuple(max(1, round(float(w) * cfg.ffn_dim)) for w in ffn_widths)
        return SubnetConfig(layers=layers, heads=heads, ffn=ffn)


SUBNET_SAMPLERS: dict[str, type[SubnetSampler]] = {"sandwich": SandwichSampler}


@dataclass
class SandwichLosses:
    """What one sandwich step measured (for logging)."""

    largest: float  # the task's loss of the full model on the gold labels
    smallest: float  # distillation (or task) loss of the smallest sub-net
    subnets: int  # how many sub-nets trained
    teacher: Optional[StepOut] = None  # the full model's step outcome (outputs detached)


class InPlaceDistillation:
    """Runs the sandwich of sub-nets on one batch and accumulates their gradients.

    Args:
        sampler: chooses the sub-nets; its first is the full model.
        task: the run's task; its ``step`` gives every sub-net's outputs and the full model's loss.
        distill: ``none`` (the task's loss for all), ``logits`` (soft labels of the largest) or
            ``hidden`` (soft labels + MSE to its final hidden states on real tokens).
        temperature: softmax temperature of teacher and students; the KL term is scaled by
            ``T^2`` (Hinton et al. 2015) so its gradient does not shrink with ``T``.
        hidden_weight: weight of the hidden-state term.
    """

    def __init__(
        self,
        sampler: SubnetSampler,
        task: Task,
        distill: str = "logits",
        temperature: float = 1.0,
        hidden_weight: float = 1.0,
    ):
        self.sampler = sampler
        self.task = task
        self.distill = distill
        self.temperature = temperature
        self.hidden_weight = hidden_weight

    def accumulate(
        self,
        model: torch.nn.Module,
        batch: dict[str, Tensor],
        step: int,
        autocast: Callable[[], contextlib.AbstractContextManager],
        scale: float = 1.0,
    ) -> SandwichLosses:
        """Forward and backward every sub-net of ``step`` on the batch; leaves the full model active.

        The caller zeroes the gradients before and clips and steps after; ``scale``
        multiplies every loss before its backward (1 / accumulation for micro-batches).
        """
        subnets = self.sampler.sample(step)
        teacher: StepOut | None = None
        losses = []
        try:
            for index, subnet in enumerate(subnets):
                model.set_subnet(subnet)
                with autocast():
                    out = self.task.step(model, batch)
                if index == 0 or self.distill == "none":
                    loss = out.loss
                else:
                    loss = self._distillation_loss(out, teacher)
                if index == 0:
                    teacher = dataclasses.replace(
                        out,
                        loss=out.loss.detach(),
                        outputs=out.outputs.detach(),
                        hidden=None if out.hidden is None else out.hidden.detach(),
                    )
                (loss * scale).backward()
                losses.append(loss.item())
        finally:
            model.set_subnet(None)
        return SandwichLosses(
            largest=losses[0],
            smallest=losses[1] if len(losses) > 1 else losses[0],
            subnets=len(subnets),
            teacher=teacher,
        )

    def _distillation_loss(self, out: StepOut, teacher: StepOut) -> Tensor:
        t = self.temperature
        soft = F.softmax(teacher.outputs / t, dim=-1)
        loss = F.kl_div(F.log_softmax(out.outputs / t, dim=-1), soft, reduction="batchmean") * (t * t)
        if self.distill == "hidden":
            hidden, teacher_hidden = out.hidden, teacher.hidden
            real = out.mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            squared = ((hidden.float() - teacher_hidden.float()) ** 2 * real).sum()
            loss = loss + self.hidden_weight * squared / (real.sum() * hidden.shape[-1]).clamp_min(1)
        return loss


def make_sampler(
    name: str, space: ElasticSpace, config: EncoderConfig, random_subnets: int, seed: int
) -> SubnetSampler:
    """The registered sampler ``name`` (``SUBNET_SAMPLERS``) for this space and model."""
    return SUBNET_SAMPLERS[name](space, config, random_subnets=random_subnets, seed=seed)


def space_of(elastic: Any) -> ElasticSpace:
    """The :class:`ElasticSpace` named by an ``elastic:`` config section (``config.ElasticConfig``)."""
    return ElasticSpace(
        widths=tuple(elastic.widths),
        depths=tuple(elastic.depths),
        ffn_widths=None if elastic.ffn_widths is None else tuple(elastic.ffn_widths),
        per_layer=elastic.per_layer,
    )
