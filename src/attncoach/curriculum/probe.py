"""Scoring every training example, with a short probe run for the scorers that need a model.

Scorers that read only the tokens (``length``, ``rarity``, ``random``) score the training
split directly. Scorers that need a model (``loss``, ``el2n``, ``forgetting``) need one that
has learned something: a copy of the freshly initialised model is trained for
``probe_epochs`` of the training data (uniform order, the run's optimiser settings, a
linear warm-up and decay over the probe), then every example is scored by forward passes
in evaluation mode. ``forgetting`` counts correct-to-wrong flips across ``probe_passes``
scoring passes spread evenly over the probe; the others use the last pass. The probe has
its own random stream, so the main run starts from the same weights and data order as it
would without it; its examples (trained and scored) are counted and reported.

Paul et al. (2021) compute EL2N a few epochs into training, averaged over several
initialisations; the probe uses one short run, which is the cheap end of that recipe.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from attncoach.atomicfile import atomic_write_json
from attncoach.curriculum.difficulty import DifficultyScorer, make_scorer
from attncoach.data.batching import EncodedSplit
from attncoach.errors import AttncoachError
from attncoach.tasks import Task

log = logging.getLogger("attncoach")


@dataclass
class ScoringResult:
    """Scores per scorer name, and what computing them cost."""

    scores: dict[str, np.ndarray] = field(default_factory=dict)
    trained_examples: int = 0  # forward + backward passes of the probe
    scored_examples: int = 0  # forward-only passes of the scoring
    seconds: float = 0.0


class ProbeSteps(Protocol):
    """The training steps of a probe, given by the recipe (``attncoach.train.probe_steps.ProbeTrainer``)."""

    def steps_for(self, split: Any, epochs: float) -> int:
        """Steps that ``epochs`` of ``split`` take."""

    def train(
        self, model: torch.nn.Module, split: Any, steps: int, after_step: Callable[[int], None], seed: int
    ) -> int:
        """Train ``model`` for ``steps`` steps, calling ``after_step(step)``; returns the examples trained on."""


def score_examples(
    names: Sequence[str],
    split: EncodedSplit,
    model: torch.nn.Module,
    task: Task,
    probe_steps: ProbeSteps,
    probe_epochs: float,
    probe_passes: int,
    device: torch.device,
    autocast: Callable[[], object],
    batch_size: int,
    seed: int = 0,
) -> ScoringResult:
    """Scores of every example of ``split`` by each scorer in ``names``.

    Args:
        names: registered scorer names.
        split: the training split.
        model: the run's freshly built model (copied for the probe, never changed).
        task: the run's task (its ``step`` scores a batch).
        probe_steps: trains the probe (the recipe's training steps).
        probe_epochs: probe length, in epochs of ``split``.
        probe_passes: scoring passes during the probe (only ``forgetting`` uses more than one).
        device, autocast: where and how the scoring runs.
        batch_size: examples per scoring forward pass.
        seed: the run's seed.
    """
    tick = time.perf_counter()
    result = ScoringResult()
    scorers = [make_scorer(name, seed) for name in names]
    for scorer in scorers:
        scorer.fit(split.ids)
    static = [s for s in scorers if not s.needs_model]
    learned = [s for s in scorers if s.needs_model]
    for scorer in static:
        result.scores[scorer.name] = _pass(split, [scorer], None, task, device, autocast, batch_size)[scorer.name]
    if learned:
        passes = probe_passes if any(s.name == "forgetting" for s in learned) else 1
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed + 7919)
            probe = copy.deepcopy(model).to(device)
            steps = probe_steps.steps_for(split, probe_epochs)
            marks = {max(1, round(steps * (k + 1) / passes)) for k in range(passes)}
            log.info(
                "curriculum: probe run of %d steps (%.2f epochs) to score examples by %s",
                steps,
                probe_epochs,
                ", ".join(s.name for s in learned),
            )

            def score_at(step: int) -> None:
                if step in marks:
                    result.scores.update(_pass(split, learned, probe, task, device, autocast, batch_size))
                    result.scored_examples += len(split)

            result.trained_examples += probe_steps.train(probe, split, steps, score_at, seed + 7919)
    result.seconds = time.perf_counter() - tick
    return result


@torch.no_grad()
def _pass(
    split: EncodedSplit,
    scorers: list[DifficultyScorer],
    model: torch.nn.Module | None,
    task: Task,
    device: torch.device,
    autocast: Callable[[], object],
    batch_size: int,
) -> dict[str, np.ndarray]:
    """One scoring pass over the split (batches sorted by length); scores in the split's order."""
    out = {s.name: np.zeros(len(split), dtype=np.float64) for s in scorers}
    if model is not None:
        model.eval()
    order = np.argsort(split.lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        batch = split.batch(index.tolist())
        batch["index"] = torch.as_tensor(index)
        step_out = None
        if model is not None:
            with autocast():
                step_out = task.step(model, {k: v.to(device) for k, v in batch.items() if k != "index"})
        for scorer in scorers:
            out[scorer.name][index] = scorer.score(batch, step_out)
    return out


def measure_losses(
    model: torch.nn.Module,
    task: Task,
    split: EncodedSplit,
    indices: np.ndarray,
    device: torch.device,
    autocast: Callable[[], object],
    batch_size: int,
) -> np.ndarray:
    """The task's loss of the examples at ``indices`` under ``model`` (evaluation mode, forward only).

    The model is left in training mode afterwards.
    """
    try:
        return _pass(split.subset(indices), [make_scorer("loss")], model, task, device, autocast, batch_size)["loss"]
    finally:
        model.train()


def write_difficulty(
    path: Path, scores: dict[str, np.ndarray], kept: np.ndarray | None, result: ScoringResult, lines: Sequence[int]
) -> None:
    """Cache the scores (and the examples pruning kept) in the run directory as JSON."""
    atomic_write_json(
        path,
        {
            "format": 1,
            "examples": len(lines),
            "scores": {name: [round(float(v), 6) for v in values] for name, values in scores.items()},
            "kept": None if kept is None else [int(i) for i in kept],
            "cost": {
                "trained_examples": result.trained_examples,
                "scored_examples": result.scored_examples,
                "seconds": round(result.seconds, 3),
            },
        },
    )


def read_difficulty(path: Path, size: int) -> dict[str, Any]:
    """Read ``difficulty.json`` back for a resumed run; a damaged or mismatched file is an AttncoachError."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        scores = {str(k): np.asarray(v, dtype=np.float64) for k, v in data["scores"].items()}
        kept = None if data["kept"] is None else np.asarray(data["kept"], dtype=np.int64)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise AttncoachError(f"{path} is damaged; it cannot be used to resume this run") from None
    if any(len(v) != size for v in scores.values()) or (
        kept is not None and (kept.min(initial=0) < 0 or kept.max(initial=0) >= size)
    ):
        raise AttncoachError(f"{path} was written for a different training split ({size} examples here)")
    return {"scores": scores, "kept": kept}
