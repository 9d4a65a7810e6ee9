"""Measure sub-nets: validation quality, active parameters and latency, and their Pareto front.

Latency is wall-clock time per forward pass of one padded batch (``time.perf_counter``),
in eval mode under ``torch.inference_mode``, with the torch threads in use at the time
(``torch.get_num_threads()``; the CLI reports it). The batches are real encoded examples:
the first ``batches * batch_size`` sequences of the given ids (cycled when there are
fewer), each batch padded to its longest sequence like :func:`attncoach.data.batching.collate`.
After ``warmup`` untimed passes over all batches, ``repeats`` timed passes run every batch
once; the result is the median of these ``repeats * batches`` times, which a short burst of
other work on a shared machine does not move. On CPU, set the threads first
(``torch.set_num_threads``): more threads than free cores makes the times erratic.

Quality comes from the task: a :class:`Judge` holds the model, the split and the task's
evaluation of it, and the metrics to report, the task's primary metric first (macro-F1 for
text classification, NDCG@10 for next-item recommendation).

Example:
    >>> judge = Judge.of(clf, data.splits["val"], data)                     # doctest: +SKIP
    >>> rows = evaluate_subnets(judge, [Candidate("w0.50 d1.00", sub)])    # doctest: +SKIP
    >>> pareto_front(rows, quality=judge.primary)                          # doctest: +SKIP
    [True]
"""

from __future__ import annotations

import itertools
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from attncoach.data.batching import collate
from attncoach.models.encoder import SubnetConfig
from attncoach.tasks import TASKS, TaskData

log = logging.getLogger("attncoach")


@dataclass(frozen=True)
class Candidate:
    """A named sub-net, e.g. ``Candidate("w0.50 d1.00", SubnetConfig(...))``."""

    name: str
    subnet: SubnetConfig


@dataclass
class Judge:
    """What scores a sub-net: the task's evaluation of one split, and the metrics to report.

    Attributes:
        model: the elastic model whose active sub-net is scored.
        split: the split it is scored on (``len``, ``ids``, and ``subset`` for scoring on a part).
        evaluate: the task's metrics of the model's active sub-net on a split.
        metrics: the metrics kept, the task's primary metric first.
    """

    model: torch.nn.Module
    split: Any
    evaluate: Callable[[Any], dict[str, Any]]
    metrics: tuple[str, ...]

    @classmethod
    def of(cls, predictor: Any, split: Any, data: TaskData) -> Judge:
        """The judge of a loaded model (``model`` and ``task``) on a split of the task's data."""
        task = TASKS[predictor.task]()
        return cls(predictor.model, split, lambda s: task.evaluate(predictor.model, s, data), task.tracked)

    @property
    def primary(self) -> str:
        """The metric that ranks sub-nets (higher is better)."""
        return self.metrics[0]

    def quality(self, examples: int | None = None) -> dict[str, float]:
        """The metrics of the active sub-net on the split (on its first ``examples`` examples when given)."""
        split = self.split
        if examples is not None and examples < len(split):
            split = split.subset(list(range(examples)))
        metrics = self.evaluate(split)
        return {k: metrics[k] for k in self.metrics}


def latency_batches(ids: Sequence[Any], batch_size: int, batches: int = 4) -> list[dict[str, torch.Tensor]]:
    """``batches`` padded batches of ``batch_size`` sequences taken in order from ``ids`` (cycled).

    ``ids`` are encoded sequences, or a split, whose own ``batch(indices)`` makes each batch (images).

    Raises:
        ValueError: no sequences, or a batch size below 1.
    """
    if not len(ids) or batch_size < 1:
        raise ValueError("latency needs at least one sequence and a batch size of at least 1")
    chosen = list(itertools.islice(itertools.cycle(range(len(ids))), batches * batch_size))
    make = ids.batch if hasattr(ids, "batch") else lambda index: collate([ids[i] for i in index])
    return [make(chosen[i : i + batch_size]) for i in range(0, len(chosen), batch_size)]


def measure_latency(
    model: torch.nn.Module,
    ids: Sequence[Sequence[int]],
    batch_size: int,
    repeats: int = 5,
    warmup: int = 2,
    batches: int = 4,
) -> float:
    """Milliseconds per forward pass of a batch of ``batch_size`` real sequences (see the module doc).

    Args:
        model: a classifier taking ``(input_ids, attention_mask)``; its active sub-net is timed.
        ids: encoded sequences (e.g. the val split's ``ids``), or the split itself (see :func:`latency_batches`).
        batch_size: sequences per batch.
        repeats: timed passes over the batches.
        warmup: untimed passes first.
        batches: how many different batches each pass runs.

    Returns:
        The median time of one batch over all timed runs, in milliseconds.
    """
    device = next(model.parameters()).device
    inputs = [
        (b["input_ids"].to(device), b["attention_mask"].to(device)) for b in latency_batches(ids, batch_size, batches)
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                _run_all(model, inputs, device)
            times = [_time_one(model, batch, device) for _ in range(max(1, repeats)) for batch in inputs]
    finally:
        model.train(was_training)
    return 1000.0 * statistics.median(times)


def _run_all(model: torch.nn.Module, inputs: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device) -> None:
    for batch in inputs:
        _time_one(model, batch, device)


def _time_one(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor], device: torch.device) -> float:
    """Seconds of one forward pass (waiting for the GPU, if any, to finish it)."""
    start = time.perf_counter()
    model(*batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def active_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(encoder, total) parameters of the active sub-net; total adds what is outside the encoder (a head)."""
    encoder = model.encoder.num_parameters(active_only=True)
    outside = sum(p.numel() for name, p in model.named_parameters() if not name.startswith("encoder."))
    return encoder, encoder + outside


def evaluate_subnets(
    judge: Judge, candidates: Sequence[Candidate], batch_sizes: Sequence[int] = (1, 32), repeats: int = 5
) -> list[dict[str, Any]]:
    """Quality, size and latency of each candidate sub-net on one split.

    Args:
        judge: the model, the split (e.g. the run's val split) and the task's metrics.
        candidates: the sub-nets to measure.
        batch_sizes: a latency is measured at each (keys ``latency_ms_b{size}``).
        repeats: timed repetitions per latency.

    Returns:
        One row per candidate: ``name``, ``subnet`` (``SubnetConfig.to_dict``), ``layers``,
        ``heads``, ``ffn`` (active totals), ``encoder_parameters``, ``parameters``,
        the judge's metrics (``macro_f1`` and ``accuracy`` for text classification) and the
        latencies. The model's sub-net is restored after.
    """
    model = judge.model
    previous = model.subnet
    rows = []
    try:
        for number, candidate in enumerate(candidates, 1):
            rows.append(_measure_one(judge, candidate, batch_sizes, repeats))
            row = rows[-1]
            log.info(
                "sub-net %d/%d %s: val %s %.4f, %s params, %s",
                number,
                len(candidates),
                candidate.name,
                judge.primary,
                row[judge.primary],
                f"{row['parameters']:,}",
                ", ".join(f"{row[f'latency_ms_b{b}']:.2f} ms at batch {b}" for b in batch_sizes),
            )
    finally:
        model.set_subnet(previous)
    return rows


def _measure_one(judge: Judge, candidate: Candidate, batch_sizes: Sequence[int], repeats: int) -> dict[str, Any]:
    model = judge.model
    model.set_subnet(candidate.subnet)
    metrics = judge.quality()
    encoder_params, params = active_parameters(model)
    row = {
        "name": candidate.name,
        "subnet": candidate.subnet.to_dict(),
        **subnet_shape(model),
        "encoder_parameters": encoder_params,
        "parameters": params,
        **metrics,
    }
    for size in batch_sizes:
        row[f"latency_ms_b{size}"] = measure_latency(model, judge.split, size, repeats=repeats)
    return row


def subnet_shape(model: torch.nn.Module) -> dict[str, Any]:
    """Active ``layers``, total active ``heads`` and ``ffn`` neurons, and both per kept layer."""
    encoder = model.encoder
    active = [encoder.layers[i] for i in range(len(encoder.layers)) if _is_active(encoder, i)]
    heads = [layer.attn.active_heads for layer in active]
    ffn = [layer.ffn.active_width for layer in active]
    return {"layers": len(active), "heads": sum(heads), "ffn": sum(ffn), "heads_per_layer": heads, "ffn_per_layer": ffn}


def _is_active(encoder: Any, index: int) -> bool:
    layers = encoder.subnet.layers
    return layers is None or index in layers


def pareto_front(
    rows: Sequence[dict[str, Any]], quality: str = "macro_f1", costs: Sequence[str] = ("latency_ms_b32", "parameters")
) -> list[bool]:
    """Which rows are on the Pareto front: no other row dominates them.

    A row dominates another when its ``quality`` is at least as high and none of its
    ``costs`` is higher, and it is strictly better in at least one of them.

    Example:
        >>> pareto_front([{"f1": 0.9, "ms": 2}, {"f1": 0.8, "ms": 3}, {"f1": 0.7, "ms": 1}],
        ...              quality="f1", costs=("ms",))
        [True, False, True]
    """

    def dominates(a: dict[str, Any], b: dict[str, Any]) -> bool:
        no_worse = a[quality] >= b[quality] and all(a[c] <= b[c] for c in costs)
        better = a[quality] > b[quality] or any(a[c] < b[c] for c in costs)
        return no_worse and better

    return [not any(dominates(other, row) for other in rows) for row in rows]
