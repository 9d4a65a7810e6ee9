"""What one more forward pass costs a model, in padded tokens: how answering requests cuts its passes.

A forward pass over ``rows`` sequences padded to ``tokens`` costs about ``c + rows * tokens * t``: ``t``
the arithmetic of one token, ``c`` the fixed cost of running the pass at all (dispatching each
operation, quantising activations, crossing into ONNX Runtime). :func:`pass_overhead` measures
``c / t`` once per model and active sub-net, and :func:`attncoach.data.batching.inference_batches`
cuts a request batch's sequences into the passes that cost least under it. Measured on one torch
thread: MiniLM about 20 tokens (several passes of similar lengths are fastest), the main job's
model about 40, its int8 smallest sub-net about 500 (one padded pass is fastest).

Example:
    >>> overhead = pass_overhead(model, torch.device("cpu"))  # doctest: +SKIP
    >>> overhead
    32.0
"""

from __future__ import annotations

import math
import statistics
import time
import weakref
from typing import Any

import torch

PROBE_TOKENS = 16  # tokens per probe sequence
PROBE_ROWS = 8  # rows of the larger probe pass (the smaller has one)
PROBE_REPEATS = 3  # timed passes of each probe, after one untimed
MIN_OVERHEAD, MAX_OVERHEAD = 1.0, 1024.0  # tokens; the measurement is clamped to these

# model -> {active sub-net: overhead in tokens}; weak, so that a dropped model takes its entry with it.
_MEASURED: weakref.WeakKeyDictionary[torch.nn.Module, dict[str, float]] = weakref.WeakKeyDictionary()


def pass_overhead(model: torch.nn.Module, device: torch.device) -> float:
    """The fixed cost of one forward pass of ``model``'s active sub-net, in tokens of its arithmetic.

    Measured the first time it is asked for (two probe passes of :data:`PROBE_TOKENS`-token rows, one row
    and :data:`PROBE_ROWS` rows, the median of :data:`PROBE_REPEATS` timings each; about 0.1 s for MiniLM
    on a CPU, a few milliseconds for small models) and kept for the model and sub-net. The result is
    rounded to a power of two, so that timing noise seldom changes how a batch is cut, and clamped to
    [:data:`MIN_OVERHEAD`, :data:`MAX_OVERHEAD`]. Two processes may still measure different values and
    cut the same batch differently; the logits then differ in float rounding only (see the parity
    check in bench/README.md: labels agreed on every text of the main job's and MiniLM's test splits).

    Args:
        model: a classifier taking ``(input_ids, attention_mask)``, torch or ONNX Runtime.
        device: where its inputs go.
    """
    per_subnet = _MEASURED.setdefault(model, {})
    key = repr(getattr(model, "subnet", None))
    if key not in per_subnet:
        one = _probe_seconds(model, device, 1)
        many = _probe_seconds(model, device, PROBE_ROWS)
        token = (many - one) / ((PROBE_ROWS - 1) * PROBE_TOKENS)
        fixed = one - PROBE_TOKENS * token
        tokens = fixed / token if token > 0 else MAX_OVERHEAD  # no measurable growth: passes cost only their count
        tokens = min(max(tokens, MIN_OVERHEAD), MAX_OVERHEAD)
        per_subnet[key] = float(2 ** round(math.log2(tokens)))
    return per_subnet[key]


@torch.inference_mode()
def _probe_seconds(model: Any, device: torch.device, rows: int) -> float:
    """Median seconds of one forward pass over ``rows`` sequences of PROBE_TOKENS tokens."""
    ids = torch.full((rows, PROBE_TOKENS), 5, dtype=torch.long, device=device)  # 5: the first ordinary token
    mask = torch.ones_like(ids, dtype=torch.bool)
    was_training = model.training
    model.eval()
    try:
        model(ids, mask)  # untimed
        times = []
        for _ in range(PROBE_REPEATS):
            _synchronize(device)
            start = time.perf_counter()
            model(ids, mask)
            _synchronize(device)
            times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return statistics.median(times)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
