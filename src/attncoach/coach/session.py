"""A coach bound to one training run: signals in, knobs applied to the model and optimizer.

The recipe keeps its loop; at three points it hands over to :class:`CoachSession`:

- ``before_update(...)``: after the gradients of an optimizer step exist and before the
  step is taken. Step signals go to the policies; the answer is ``"step"``, ``"skip"``
  (a rollback happened: do not apply these gradients) or ``"stop"``.
- ``step_context()``: around ``optimizer.step()``, to measure the update (hypergradient,
  update-to-weight ratio) and keep the rollback snapshot fresh.
- ``after_eval(...)``: evaluation signals (val metric, loss, gap, attention entropy).

Knobs take effect immediately: the LR scale multiplies the scheduled LR of every group,
``dropout`` sets every ``nn.Dropout`` of the model, ``weight_decay`` the decayed groups,
``accumulation`` the number of micro-batches per optimizer step.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from attncoach.coach.coach import Coach, build_policies
from attncoach.coach.policies import Knobs
from attncoach.coach.signals import Signals, SignalTracker, attention_entropy, grad_sq_norm

log = logging.getLogger("attncoach")


def model_dropout(model: torch.nn.Module) -> float:
    """The dropout probability of the model's first ``nn.Dropout`` (0 when it has none)."""
    return next((m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)), 0.0)


class CoachSession:
    """The coach of one run (see the module docstring).

    Args:
        coach_cfg: the ``coach:`` config section.
        model: the trained model.
        optimizer: its optimizer (parameter groups with ``base_lr``).
        weight_decay: the configured weight decay.
        log_path: where ``coach.jsonl`` goes.
        elastic: whether supernet training is on (no half-batch noise measurement then).
        total_steps: the run's optimizer steps (an LR probe takes at most a tenth of them).
        chance_loss: the training loss of guessing (the best constant prediction), if known.
    """

    def __init__(
        self,
        coach_cfg: Any,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        weight_decay: float,
        log_path: Path,
        elastic: bool = False,
        total_steps: int | None = None,
        chance_loss: float | None = None,
    ):
        self.model, self.optimizer = model, optimizer
        self.chance_loss = chance_loss
        # False while a curriculum trains a selection of the data (the loss level is not the data's)
        self.representative = True
        knobs = Knobs(dropout=model_dropout(model), weight_decay=weight_decay)
        self.coach = Coach(build_policies(coach_cfg.policies), knobs, log_path)
        policies = self.coach.policies
        for policy in policies:
            if total_steps is not None and (note := policy.fit_to_run(total_steps)) is not None:
                log.info(note)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.tracker = SignalTracker(self.params)
        self.noise_every = coach_cfg.noise_every
        self.measure_noise = any("gradient_noise" in p.needs for p in policies) and not elastic
        intervals = [p.update_interval() or coach_cfg.noise_every for p in policies if "updates" in p.needs]
        self.track_updates = bool(intervals)
        self.update_every = min(intervals) if intervals else self.noise_every  # steps between measured updates
        periodic = [n for n in (p.snapshot_interval() for p in policies) if n is not None]
        self.snapshot_every = min(periodic) if periodic else None  # periodic refresh
        # a probe rolls back to the start: it needs the snapshot taken there even without a periodic one
        self.keeps_snapshots = any("snapshots" in p.needs for p in policies)
        self.snapshot_at = 0  # self.updates when the newest snapshot was taken
        self.snapshot: dict[str, Any] | None = None  # what a rollback restores
        self.newest: dict[str, Any] | None = None
        self.update_ratio: float | None = None
        self.last_entropy: list[float] | None = None  # of the latest evaluation
        self.updates = 0
        self._dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
        self._applied: tuple[float, float] | None = None  # the (dropout, weight decay) last pushed
        self.apply_knobs()

    # -- knobs
    @property
    def knobs(self) -> Knobs:
        return self.coach.knobs

    def apply_knobs(self, force: bool = False) -> None:
        """Push dropout and weight decay into the model and optimizer (LR and accumulation are read live).

        Only when they changed since the last push, unless ``force`` (the optimizer's state was
        loaded back: its groups hold the old weight decay).
        """
        values = (self.knobs.dropout, self.knobs.weight_decay)
        if values == self._applied and not force:
            return
        for module in self._dropouts:
            module.p = self.knobs.dropout
        for group in self.optimizer.param_groups:
            if group["weight_decay"] > 0:
                group["weight_decay"] = self.knobs.weight_decay
        self._applied = values

    @property
    def probing(self) -> bool:
        """True while a policy holds the run exclusively (the LR probe): its steps will be undone."""
        return any(p.exclusive for p in self.coach.policies)

    @property
    def owns_stopping(self) -> bool:
        """True when a policy (plateau) decides when the run stops, instead of early-stopping patience."""
        return any(p.owns_stopping for p in self.coach.policies)

    # -- the step
    def wants_noise(self, step: int) -> bool:
        """Whether this micro-batch should be run as two halves to measure the gradient noise."""
        return self.measure_noise and step % self.noise_every == 0

    def record_noise(self, half_sq: float, full_sq: float, batch: int) -> None:
        self.tracker.record_noise(half_sq, full_sq, batch)

    def before_update(
        self,
        step: int,
        examples_seen: int,
        loss: float,
        grad_norm: float,
        batch_size: int,
        lr_schedule: float | None = None,
    ) -> str:
        """Step signals to the policies; returns ``step``, ``skip`` (rolled back) or ``stop``.

        ``lr_schedule`` is the schedule's LR multiplier for this step (the LR scale multiplies it).
        """
        ema = self.tracker.record_loss(loss)
        nonfinite = not (math.isfinite(loss) and math.isfinite(grad_norm))
        signals = Signals(
            step=step,
            examples_seen=examples_seen,
            loss=loss,
            loss_ema=ema,
            grad_norm=grad_norm,
            nonfinite=nonfinite,
            batch_size=batch_size,
            update_ratio=self.update_ratio,
            hypergradient=self.tracker.hypergradient() if self.track_updates and not nonfinite else None,
            noise_scale=self.tracker.noise_scale(),
            lr_schedule=lr_schedule,
            chance_loss=self.chance_loss if self.representative else None,
        )
        decisions = self.coach.observe(signals)
        self.apply_knobs()
        if any(d.knob == "rollback" for d in decisions):
            self._rollback()
            return "skip"
        if any(d.knob == "stop" for d in decisions):
            return "stop"
        if nonfinite:  # no guard: never apply a non-finite gradient (the recipe skips and counts the update)
            self.tracker.forget_update()
            return "skip"
        return "step"

    @contextlib.contextmanager
    def step_context(self, step: int, loss: float) -> Iterator[None]:
        """Around ``optimizer.step()``: measure the update, refresh the rollback snapshot."""
        # measure the update just before the steps whose gradient the hypergradient reads
        measure = (self.updates + 1) % self.update_every == 0
        if measure:
            self.tracker.before_step()
        yield
        self.updates += 1
        if measure:
            self.update_ratio = self.tracker.after_step()
        due = self.snapshot_every is not None and self.updates - self.snapshot_at >= self.snapshot_every
        # never a state from a probe or from a divergence's probation
        steady = all(p.steady and not p.exclusive for p in self.coach.policies)
        if due and math.isfinite(loss) and steady:
            self.take_snapshot(step)

    def take_snapshot(self, step: int) -> None:
        """Keep a copy of the model and optimizer state to roll back to (in memory)."""
        if not self.keeps_snapshots:
            return
        newest = {
            "step": step,
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "loss_ema": self.tracker.loss_ema,
        }
        self.snapshot_at = self.updates
        # roll back to the older of the last two: a divergence noticed a few steps late may
        # already be in the newest one
        self.snapshot, self.newest = (self.newest if self.newest is not None else newest), newest
        self.coach.rollback_step = self.snapshot["step"]

    def _rollback(self) -> None:
        if self.snapshot is not None:
            self.model.load_state_dict(self.snapshot["model"])
            self.optimizer.load_state_dict(self.snapshot["optimizer"])
            self.apply_knobs(force=True)  # the optimizer state dict brought back the old weight decay
            self.tracker.loss_ema = self.snapshot["loss_ema"]  # the diverged losses are not the run's average
            self.newest = self.snapshot  # the states after it are the ones being discarded
        self.optimizer.zero_grad(set_to_none=True)
        self.tracker.forget_update()

    def data_shift(self, step: int) -> None:
        """A curriculum round changed which examples are trained: the training loss jumps to a new level.

        The loss average restarts, policies with a ``data_shift`` method forget their loss
        references, and the current state becomes the snapshot to roll back to (unless a
        probe or a probation is running), so no check compares the new round's losses with
        the old round's.
        """
        self.tracker.loss_ema = None
        for policy in self.coach.policies:
            policy.data_shift()
        steady = all(p.steady and not p.exclusive for p in self.coach.policies)
        if steady:
            self.take_snapshot(step)
            self.take_snapshot(step)  # both snapshots: a rollback never goes back across the shift

    # -- evaluations
    def after_eval(
        self,
        step: int,
        examples_seen: int,
        metric: float | None,
        best: float,
        val_loss: float | None,
        entropy_batch: dict[str, torch.Tensor] | None,
    ) -> bool:
        """Evaluation signals to the policies; True when one of them stops the run.

        ``metric`` and ``val_loss`` are None for an evaluation of a diverged model (a non-finite val
        loss): the policies that act on them leave it out.
        """
        ema = self.tracker.loss_ema
        entropy = None
        if entropy_batch is not None:
            entropy = attention_entropy(self.model, entropy_batch["input_ids"], entropy_batch["attention_mask"])
        signals = Signals(
            step=step,
            examples_seen=examples_seen,
            evaluated=True,
            val_metric=metric,
            val_loss=val_loss,
            best_val_metric=best,
            loss_ema=ema,
            gap=None if ema is None or val_loss is None or not self.representative else val_loss - ema,
            attention_entropy=entropy,
        )
        decisions = self.coach.observe(signals)
        self.apply_knobs()
        self.last_entropy = entropy
        return any(d.knob == "stop" for d in decisions)

    # -- checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "coach": self.coach.state_dict(),
            "tracker": self.tracker.state_dict(),
            "updates": self.updates,
            "update_ratio": self.update_ratio,
        }

    def load_state_dict(self, state: dict[str, Any], step: int) -> None:
        """Restore a checkpoint's coach state; decisions logged after ``step`` are dropped (taken again)."""
        self.coach.load_state_dict(state["coach"])
        self.tracker.load_state_dict(state["tracker"])
        self.updates, self.update_ratio = state["updates"], state["update_ratio"]
        self.coach.truncate_log(step)
        self.apply_knobs(force=True)


def measure_noise_halves(
    loss_of: Any, batch: dict[str, torch.Tensor], scale: float, params: list[torch.nn.Parameter]
) -> tuple[float, float, float]:
    """Backward two halves of a batch (gradients start at zero); |g|^2 of the first half and of both.

    ``loss_of(batch)`` returns the mean loss of a batch; each half's loss is scaled by
    ``scale / 2`` so that the accumulated gradient equals the whole batch's times ``scale``.

    Returns:
        (loss of the whole batch, |g_half|^2, |g_batch|^2), gradients unscaled.
    """
    half = batch["input_ids"].shape[0] // 2
    first = {k: v[:half] for k, v in batch.items()}
    second = {k: v[half:] for k, v in batch.items()}
    loss1 = loss_of(first)
    (loss1 * scale / 2).backward()
    half_sq = grad_sq_norm(params) * (2 / scale) ** 2
    loss2 = loss_of(second)
    (loss2 * scale / 2).backward()
    full_sq = grad_sq_norm(params) / scale**2
    return (loss1.item() + loss2.item()) / 2, half_sq, full_sq
