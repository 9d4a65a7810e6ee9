"""The training steps of a curriculum probe run, given by the recipe (the curriculum owns no training loop).

A probe trains a copy of the fresh model for a few steps with the run's task, optimiser
settings and device, under a linear warm-up and decay over the probe, so that the
model-based difficulty scorers have a model that has learned something.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import torch

from attncoach.data.batching import LengthBucketBatchSampler
from attncoach.progress import TrainingProgress
from attncoach.tasks import Task
from attncoach.train.optim import make_optimizer
from attncoach.train.schedule import lr_factor


class ProbeTrainer:
    """Runs ``steps`` optimiser steps of ``model`` on a split; calls ``after_step(step)`` after each.

    Args:
        task: the run's task (its ``step`` gives the loss).
        train_cfg: the run's ``train:`` section (seed, LR, batch size, clipping...).
        device: where the probe runs.
        autocast: the run's precision context.
        quiet: no progress bar.
    """

    def __init__(
        self,
        task: Task,
        train_cfg: Any,
        device: torch.device,
        autocast: Callable[[], contextlib.AbstractContextManager],
        quiet: bool = True,
    ) -> None:
        self.task, self.t, self.device, self.autocast, self.quiet = task, train_cfg, device, autocast, quiet

    def steps_for(self, split: Any, epochs: float) -> int:
        """How many steps ``epochs`` of ``split`` take at the run's batch size."""
        per_epoch = -(-len(split) // self.t.batch_size)
        return max(1, math.ceil(epochs * per_epoch))

    def train(
        self, model: torch.nn.Module, split: Any, steps: int, after_step: Callable[[int], None], seed: int
    ) -> int:
        """Train ``model`` in place; returns the examples trained on."""
        t = self.t
        optimizer = make_optimizer(model, t)
        sampler = LengthBucketBatchSampler(split.lengths, t.batch_size, seed=seed, bucket_size=t.bucket_size)
        per_epoch = len(sampler)
        trained = 0
        model.train()
        with TrainingProgress(steps, 0, enabled=not self.quiet, description="probe") as bar:
            for step in range(steps):
                epoch, position = divmod(step, per_epoch)
                index = sampler.batches(epoch)[position]
                batch = {k: v.to(self.device) for k, v in split.batch(index).items()}
                for group in optimizer.param_groups:
                    group["lr"] = group["base_lr"] * lr_factor(step, steps, int(0.06 * steps), "linear")
                with self.autocast():
                    loss = self.task.step(model, batch).loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if t.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
                optimizer.step()
                trained += len(index)
                bar.update(step + 1, loss=loss.item())
                after_step(step + 1)
                model.train()
        return trained
