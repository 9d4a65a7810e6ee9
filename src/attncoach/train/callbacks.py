"""The parts of a run that plug into the recipe: the coach, the curriculum, supernet training, the loggers.

The recipe (``train/recipe.py``) calls every callback of its list at the same points, in
order, and knows none of them by name:

- ``on_train_start`` before the first step of a (resumed) run, ``on_round_start`` when the
  curriculum scheduler hands out the batches of a round (an epoch for the uniform one);
- ``before_batch`` before a micro-batch goes forward: the weight of each of its examples in
  the loss (the curriculum's noisy-label switches), or None;
- ``on_batch_end`` after a micro-batch's forward pass, with the task's :class:`StepOut`
  (not for the LR probe's steps, which the coach rolls back);
- ``after_eval`` after each evaluation on val (a callback may stop the run by returning
  its reason), ``train_scalars`` at each training log point;
- ``state_dict`` / ``load_state_dict``: the callback's entry ``key`` in every checkpoint's
  ``state.json``, so a resumed run continues exactly; ``on_checkpoint`` once a checkpoint is
  complete on disk (a tuner hands it on: ``attncoach.tune.ray_trial``);
- ``finish``: its section ``key`` of ``metrics.json`` (or None);
- ``on_log``: the run's scalars of one group (``train``, ``val``, ``test``, ``coach``,
  ``curriculum``) at a step, which any callback may add to with ``recipe.log_scalars`` (the
  loggers of ``train/loggers.py`` and the history of ``train/history.py`` write them);
  ``on_finish`` once ``metrics.json`` is written, and
  ``close`` once the run ends, even when it fails.

The optimiser-step protocol of the coach (gradient accumulation, the LR scale, skipping a
step, rollbacks) is a strategy, not a callback: the recipe asks ``recipe.coach``, which is a
:class:`~attncoach.coach.session.CoachSession` or :class:`Uncoached` (it never changes anything).

Example:
    >>> callbacks = [CurriculumCallback(scheduler, record), CoachCallback(session)]  # doctest: +SKIP
    >>> state = {cb.key: cb.state_dict() for cb in callbacks}                       # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from attncoach.coach.policies.base import Knobs
from attncoach.tasks import StepOut

log = logging.getLogger("attncoach")


class Callback:
    """A part of a run the recipe calls at fixed points; every hook is a no-op unless overridden.

    Attributes:
        key: its entry in a checkpoint's ``state.json`` and in ``metrics.json``.
    """

    key: ClassVar[str] = ""

    def on_train_start(self, recipe: Any) -> None:
        """Before the first step of this process (a new or a resumed run)."""

    def on_round_start(self, recipe: Any, round: int) -> None:
        """The scheduler has handed out the batches of ``round``."""

    def before_batch(self, recipe: Any, index: list[int]) -> np.ndarray | None:
        """A micro-batch of the training examples ``index`` is about to go forward: each one's weight in the
        batch's loss (the recipe multiplies the weights of every callback), or None for no opinion."""
        return None

    def on_batch_end(self, recipe: Any, index: list[int], out: StepOut | None) -> None:
        """A micro-batch of the training examples ``index`` went forward with outcomes ``out``."""

    def after_eval(self, recipe: Any, metrics: dict[str, Any], score: float) -> str | None:
        """An evaluation on val gave ``metrics`` (``score`` selects checkpoints; NaN when the val loss was
        not finite); a reason stops the run."""
        return None

    def train_scalars(self, recipe: Any) -> dict[str, float]:
        """Scalars to log beside the training loss."""
        return {}

    def state_dict(self) -> dict[str, Any] | None:
        """What a checkpoint keeps (JSON-ready), or None for nothing."""
        return None

    def load_state_dict(self, state: dict[str, Any] | None, recipe: Any) -> None:
        """Restore what :meth:`state_dict` returned (None: the checkpoint holds no entry)."""

    def on_checkpoint(self, recipe: Any, path: Path) -> None:
        """The checkpoint directory ``path`` of the current step is complete (written and pointed at)."""

    def finish(self, recipe: Any) -> dict[str, Any] | None:
        """This callback's section of ``metrics.json``, once the best model has been evaluated."""
        return None

    def on_log(self, recipe: Any, step: int, group: str, values: dict[str, float]) -> None:
        """Scalars of ``group`` (train, val, test, coach) at ``step``."""

    def on_finish(self, recipe: Any, metrics: dict[str, Any]) -> None:
        """The run has finished and written ``metrics.json`` (its content is ``metrics``)."""

    def close(self) -> None:
        """The run has ended (finished, stopped or failed): release files and writers."""


class Uncoached:
    """The optimiser-step protocol of a run without the coach: nothing is ever changed."""

    knobs = Knobs()
    probing = False
    owns_stopping = False

    def wants_noise(self, step: int) -> bool:
        return False

    def before_update(self, *args: Any) -> str:
        return "step"

    def step_context(self, step: int, loss: float) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()


class CoachCallback(Callback):
    """The coach's view of the run: snapshots, data shifts, evaluations, its log and its state."""

    key = "coach"

    def __init__(self, session: Any) -> None:
        self.session = session

    def on_train_start(self, recipe: Any) -> None:
        self.session.take_snapshot(recipe.state.step)

    def on_round_start(self, recipe: Any, round: int) -> None:
        self.session.representative = recipe.scheduler.representative
        if recipe.scheduler.abrupt and round > 0 and recipe.state.batch_in_epoch == 0:
            self.session.data_shift(recipe.state.step)

    def after_eval(self, recipe: Any, metrics: dict[str, Any], score: float) -> str | None:
        s, val = recipe.state, recipe.data.splits["val"]
        first = {k: v.to(recipe.device) for k, v in val.batch(range(min(64, len(val)))).items()} if len(val) else None
        finite = math.isfinite(score)  # the recipe gives NaN for an evaluation with a non-finite val loss
        val_loss = metrics["loss"] if finite else None
        stop = self.session.after_eval(
            s.step, s.examples_seen, score if finite else None, s.best_metric, val_loss, first
        )
        if self.session.last_entropy:
            values = {f"attention_entropy/layer{i}": v for i, v in enumerate(self.session.last_entropy)}
            recipe.log_scalars(s.step, "val", values)
        return (self.session.coach.stop_reason or "stopped by the coach") if stop else None

    def train_scalars(self, recipe: Any) -> dict[str, float]:
        session = self.session
        extra = {
            "noise_scale": session.tracker.noise_scale(),
            "update_ratio": session.update_ratio,
            **session.knobs.to_dict(),  # every coached knob: lr_scale, accumulation, dropout, weight_decay
            "batch": recipe.cfg.train.batch_size * session.knobs.accumulation,
        }
        return {k: v for k, v in extra.items() if v is not None}

    def state_dict(self) -> dict[str, Any]:
        return self.session.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None, recipe: Any) -> None:
        if state is None:
            raise KeyError("it holds no coach state")
        self.session.load_state_dict(state, recipe.state.step)

    def finish(self, recipe: Any) -> dict[str, Any]:
        for line in self.session.coach.summary_lines():
            log.info(line)
        return self.session.coach.summary()


class CurriculumCallback(Callback):
    """The curriculum scheduler and the learning record: they learn from every batch's outcomes."""

    key = "curriculum"

    def __init__(self, scheduler: Any, record: Any) -> None:
        self.scheduler, self.record = scheduler, record

    def on_round_start(self, recipe: Any, round: int) -> None:
        if recipe.state.batch_in_epoch == 0:  # not a run resumed inside the round: it logged this already
            self._log_progress(recipe)

    def _log_progress(self, recipe: Any) -> None:
        """The scheduler's progress (Leitner box sizes, competence) as the ``curriculum`` scalars."""
        progress = self.scheduler.progress()
        if progress:
            recipe.log_scalars(recipe.state.step, "curriculum", progress)

    def on_batch_end(self, recipe: Any, index: list[int], out: StepOut | None) -> None:
        if out is None:
            return
        losses = out.losses.detach().float().cpu().numpy().astype(np.float64)
        correct = out.correct.cpu().numpy()
        indices = np.asarray(index, dtype=np.int64)
        self.scheduler.update(indices, losses, correct)
        if self.record is not None:
            gold = recipe.data.splits["train"].labels[indices]
            margins = None if out.margin is None else out.margin.detach().float().cpu().numpy().astype(np.float64)
            self.record.update(indices, losses, out.predicted.cpu().numpy(), np.exp(-losses), gold, margins)

    def state_dict(self) -> dict[str, Any]:
        return {
            "scheduler": self.scheduler.state_dict(),
            "record": self.record.state_dict() if self.record is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any] | None, recipe: Any) -> None:
        if state is None and self.scheduler.stateless:  # a checkpoint from before the curriculum existed
            log.info(
                "the checkpoint predates the learning record: examples.jsonl counts from step %d on",
                recipe.state.step,
            )
            return
        if state is None:
            raise KeyError("it holds no curriculum state")
        self.scheduler.load_state_dict(state["scheduler"])
        if self.record is not None and state["record"] is not None:
            self.record.load_state_dict(state["record"])

    def finish(self, recipe: Any) -> dict[str, Any]:
        """Write examples.jsonl; the scheduler's and the record's summary."""
        self._log_progress(recipe)
        c = recipe.cfg.curriculum
        train = recipe.data.splits["train"]
        out: dict[str, Any] = {
            "scheduler": c.scheduler,
            "training_examples": len(train),
            "rounds": (self.scheduler.round or 0) + 1,
        }
        if c.keep_fraction < 1:
            out["pruning"] = {
                "keep_fraction": c.keep_fraction,
                "by": c.prune_by,
                "keep": c.keep,
                "skip_hardest": c.skip_hardest,
            }
        if self.record is not None:
            extra = dict(recipe.scores)
            boxes = getattr(self.scheduler, "boxes", None)
            if boxes is not None:
                extra["box"] = boxes
            self.record.write_jsonl(
                recipe.run_dir.examples, train.texts, train.labels, recipe.data.label_names, train.lines, extra
            )
            out["record"] = self.record.totals()
        return out


class NoisyLabelsCallback(Callback):
    """The curriculum's noisy-label switches (:mod:`attncoach.curriculum.noisy`): suspects' weights from the
    learning record after a warm-up (``curriculum.suspects``), small-loss selection (``curriculum.small_loss``)."""

    key = "noisy_labels"

    def __init__(self, suspects: Any, small_loss: Any) -> None:
        self.suspects, self.small_loss = suspects, small_loss

    def before_batch(self, recipe: Any, index: list[int]) -> np.ndarray | None:
        step = recipe.state.step
        if self.small_loss is not None:  # a pure function of the step: a resumed run keeps the same fraction
            recipe.task.keep_smallest = self.small_loss.keep(step)
        if self.suspects is None:
            return None
        if self.suspects.due(step):
            self.suspects.choose(step, recipe.record)
            self._log_choice(recipe)
        return self.suspects.weights(index)

    def _log_choice(self, recipe: Any) -> None:
        s = self.suspects
        flips = recipe.label_noise
        found = "" if flips is None else f"; {int(s.suspects[flips.index].sum()):,} of them injected flips"
        what = "dropped" if s.weight == 0 else f"weighted {s.weight:g}"
        log.info("step %d: %d suspects by %s %s%s", recipe.state.step, s.count, s.score, what, found)
        recipe.log_scalars(recipe.state.step, "curriculum", {"suspects": s.count})

    def train_scalars(self, recipe: Any) -> dict[str, float]:
        return {} if self.small_loss is None else {"keep_smallest": recipe.task.keep_smallest}

    def state_dict(self) -> dict[str, Any] | None:
        return None if self.suspects is None else {"suspects": self.suspects.state_dict()}

    def load_state_dict(self, state: dict[str, Any] | None, recipe: Any) -> None:
        if state is None:
            raise KeyError("it holds no noisy_labels state")
        self.suspects.load_state_dict(state["suspects"])

    def finish(self, recipe: Any) -> dict[str, Any]:
        """What the switches did; with injected noise, how many suspects were flips."""
        c, out = recipe.cfg.curriculum, {}
        if self.small_loss is not None:
            out["small_loss"] = {"forget_rate": c.small_loss.forget_rate, "ramp_epochs": c.small_loss.ramp_epochs}
        if self.suspects is not None:
            s = self.suspects
            section: dict[str, Any] = {"action": c.suspects.action, "score": s.score, "suspects": s.count}
            section["chosen_at_step"] = s.chosen_at
            if recipe.label_noise is not None and s.chosen_at is not None:
                hits = int(s.suspects[recipe.label_noise.index].sum())
                section["injected_flips_among_suspects"] = hits
                section["precision"] = round(hits / max(1, s.count), 4)
                section["recall"] = round(hits / max(1, len(recipe.label_noise.index)), 4)
            out["suspects"] = section
        return out


class ElasticCallback(Callback):
    """Supernet training's view of the run: the smallest sub-net's loss and its final metrics."""

    key = "elastic"

    def __init__(self, supernet: Any, space: Any) -> None:
        self.supernet, self.space = supernet, space

    def train_scalars(self, recipe: Any) -> dict[str, float]:
        smallest = getattr(recipe, "smallest_loss", None)  # the last micro-batch's, set by the sandwich step
        return {} if smallest is None else {"loss_smallest": smallest}

    def finish(self, recipe: Any) -> dict[str, Any]:
        """The smallest sub-net's val and test metrics, next to the space (the full model's are above)."""
        model = recipe.model
        smallest = self.supernet.sampler.sample(0)[1]
        model.set_subnet(smallest)
        try:
            out: dict[str, Any] = {
                "space": self.space.to_dict(),
                "smallest": str(smallest),
                "smallest_parameters": model.encoder.num_parameters(active_only=True),
                "full_parameters": model.encoder.num_parameters(),
            }
            for split in ("val", "test"):
                m = recipe.evaluate(recipe.data.splits[split])
                out[f"{split}_smallest"] = {k: m[k] for k in recipe.task.tracked if k in m}
        finally:
            model.set_subnet(None)
        return out
