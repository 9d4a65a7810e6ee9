"""The serving seam: what the server answers with, and the torch implementation over a model directory.

A :class:`ServedModel` is a loaded model with one or several *members*: the sub-nets it can
answer with, each with its active parameters and its measured latency by batch size. The
server picks a member per request (by name, or the largest one whose latency meets a budget)
and calls :meth:`ServedModel.predict` or :meth:`ServedModel.recommend` from one inference
thread only, so an implementation may switch sub-nets on one shared model in place.

:func:`load_served` serves a run or model directory with torch. An elastic model (one whose
``model_config.json`` holds its trained ``elastic`` space) serves its uniform sub-net grid
(every trained width x depth, see :func:`attncoach.elastic.search.uniform_genomes`); any other
model serves one member, ``"full"``. Every member is measured at load: the median time of a
forward pass over padded batches of ``max_length``-token sequences (the longest the model
reads, so a budget met here is met by any text), at batch 1 and at a larger batch, with the
torch threads in use (see :func:`attncoach.elastic.measure.measure_latency`).

Example:
    >>> served = load_served("runs/tweets-elastic")                   # doctest: +SKIP
    >>> [m.name for m in served.members]                              # doctest: +SKIP
    ['full', 'w0.5', 'd0.5', 'w0.5-d0.5', 'w0.25-d0.5']
    >>> served.predict(["the flight was late again"], member="w0.5")  # doctest: +SKIP
    [{'label': 'negative', 'probabilities': {'negative': 0.91, 'neutral': 0.06, 'positive': 0.03}}]
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from attncoach.errors import AttncoachError

log = logging.getLogger("attncoach")

RUNTIMES = ("torch", "onnx")  # what load_served (and attncoach serve --runtime) accept
MEASURED_BATCHES = (1, 32)  # batch sizes measured at load (the server adds its --max-batch)
MEASURE_REPEATS = 3  # timed passes (of 2 batches each) per latency: a median of 6, and a quick start


@dataclass(frozen=True)
class MemberInfo:
    """One servable sub-net of a model family."""

    name: str  # "full", "w0.5", "w0.5-d0.5", ... (unique in the family)
    parameters: int  # active parameters of this member
    latency_ms: dict[int, float]  # measured median milliseconds per batch, by batch size (keys include 1)
    runtime: str  # "torch" | "int8" | "onnx"


class ServedModel(Protocol):
    """A loaded model the server answers with: one or several members (sub-nets)."""

    task: str  # "text_classification" | "next_item"
    members: list[MemberInfo]  # largest / most accurate first; members[0] is the default

    def describe(self) -> dict[str, Any]:
        """JSON for GET /v1/model: task, labels and calibration (classification) or item count (next_item),
        members (name, parameters, runtime, latency_ms), attncoach version, model format version, source path."""

    def predict(self, texts: list[str], member: str) -> list[dict[str, Any]]:
        """text_classification: one {"label": str, "probabilities": {label: float}} per text, with
        the named member (calibrated when the model has a temperature). Raises AttncoachError for a task
        without predict."""

    def recommend(
        self, users: list[str] | None, histories: list[list[str]] | None, k: int, member: str
    ) -> list[list[dict[str, Any]]]:
        """next_item: for each user (or history) the top-k [{"item": str, "score": float}], best first.
        Raises AttncoachError for an unknown user / a history of only unknown items / the wrong task."""


SERVED_TASKS = ("text_classification", "next_item")  # the tasks the server answers


def load_served(
    path: str | Path,
    runtime: str = "torch",
    *,
    batch_sizes: Sequence[int] = MEASURED_BATCHES,
    repeats: int = MEASURE_REPEATS,
) -> ServedModel:
    """The served model of a run or model directory, its members measured.

    Args:
        path: a run directory, a model directory, or a family directory (``family.json``, written by
            ``attncoach export --family``: its members are served in the runtimes they were exported for).
        runtime: ``"torch"``, or ``"onnx"`` for a family exported with ``--onnx``.
        batch_sizes: the batch sizes each member's latency is measured at (1 is always added).
        repeats: timed passes per measured latency.

    Raises:
        AttncoachError: an unknown runtime, or a path that holds no complete, readable model.
    """
    from attncoach.models.saved import read_model_config

    opened = _open(path, runtime)
    if not isinstance(opened, tuple):
        return opened
    predictor, model_dir = opened
    version = read_model_config(model_dir).get("format_version", 1)
    return TorchServed.measured(predictor, model_dir, version, batch_sizes, repeats)


def served_task(path: str | Path, runtime: str = "torch") -> str:
    """The task of what :func:`load_served` would serve, loading it without measuring (a quick check).

    Raises:
        AttncoachError: as :func:`load_served`.
    """
    opened = _open(path, runtime)
    return opened[0].task if isinstance(opened, tuple) else opened.task


def _open(path: str | Path, runtime: str) -> Any:
    """A loaded family, or a loaded torch predictor with its model directory (see :func:`load_served`)."""
    from attncoach.models.saved import load_model
    from attncoach.rundir import resolve_model_dir

    if runtime not in RUNTIMES:
        raise AttncoachError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    if (Path(path) / "family.json").is_file():  # exported members, each in the runtime it was exported for
        from attncoach.serve.family import load_family

        family = load_family(path)
        runtimes = {member.runtime for member in family.members}
        if runtime == "onnx" and runtimes != {"onnx"}:
            raise AttncoachError(f"--runtime onnx: the family {path} holds {', '.join(sorted(runtimes))} members")
        return family
    if runtime == "onnx":
        raise AttncoachError(
            "--runtime onnx serves an exported ONNX family: attncoach export RUN --family --onnx --out DIR, "
            "then attncoach serve DIR"
        )
    model_dir = resolve_model_dir(path)
    predictor = load_model(model_dir)
    if predictor.task not in SERVED_TASKS:  # before any latency is measured
        raise AttncoachError(
            f"attncoach serve answers {' and '.join(SERVED_TASKS)} models, not {predictor.task} "
            "(translate with attncoach translate, or load it in Python with attncoach.load)"
        )
    return predictor, model_dir


class TorchServed:
    """A model directory served with torch: its trained sub-net grid, or the full model alone.

    Use :func:`load_served`; :meth:`measured` builds one from a loaded predictor.
    """

    def __init__(
        self,
        predictor: Any,
        subnets: dict[str, Any],
        members: list[MemberInfo],
        source: Path,
        format_version: int,
        measured_at: dict[str, Any],
    ) -> None:
        self.predictor = predictor
        self.task: str = predictor.task
        self.members = members
        self._subnets = subnets
        self._active: str | None = None
        self._source = source
        self._format_version = format_version
        self._measured_at = measured_at

    @classmethod
    def measured(
        cls,
        predictor: Any,
        source: Path,
        format_version: int,
        batch_sizes: Sequence[int] = MEASURED_BATCHES,
        repeats: int = MEASURE_REPEATS,
    ) -> TorchServed:
        """Serve ``predictor`` (a loaded model directory), measuring each member's parameters and latency."""
        import torch

        from attncoach.elastic.measure import active_parameters, measure_latency

        subnets = member_subnets(predictor)
        sizes = sorted({1, *(int(b) for b in batch_sizes)})
        if sizes[0] < 1:
            raise AttncoachError(f"measured batch sizes must be at least 1, got {list(batch_sizes)}")
        model = predictor.model
        ids = timing_sequences(model.encoder.config, predictor.max_length, 2 * sizes[-1])
        log.info(
            "measuring %d member(s) at batch %s: forward passes over %d-token sequences, %d torch thread(s)",
            len(subnets),
            ", ".join(map(str, sizes)),
            predictor.max_length,
            torch.get_num_threads(),
        )
        started = time.perf_counter()
        members = []
        for name, subnet in subnets.items():
            model.set_subnet(subnet)
            latency = {b: measure_latency(model, ids, b, repeats=repeats, warmup=1, batches=2) for b in sizes}
            members.append(MemberInfo(name, active_parameters(model)[1], latency, "torch"))
            shown = ", ".join(f"{ms:.2f} ms at batch {b}" for b, ms in latency.items())
            log.info("member %s: %s parameters, %s", name, f"{members[-1].parameters:,}", shown)
        model.set_subnet(None)
        log.info("measured in %.1f s", time.perf_counter() - started)
        members.sort(key=lambda m: (-m.parameters, -m.latency_ms[1]))
        measured_at = {
            "tokens": predictor.max_length,
            "threads": torch.get_num_threads(),
            "repeats": repeats,
            "statistic": "median milliseconds per forward pass of one batch",
        }
        return cls(predictor, subnets, members, source, format_version, measured_at)

    def describe(self) -> dict[str, Any]:
        """JSON for GET /v1/model (see :class:`ServedModel`)."""
        from attncoach import __version__
        from attncoach.elastic.space import saved_space

        space = saved_space(self.predictor)
        about: dict[str, Any] = {"task": self.task}
        if self.task == "text_classification":
            about["labels"] = list(self.predictor.labels)
            about["calibration"] = self.predictor.calibration  # its temperature divides the logits; None: raw
        else:
            about["items"] = len(self.predictor.items)
            about["users"] = len(self.predictor.users)
        return {
            **about,
            "max_length": self.predictor.max_length,
            "members": members_json(self.members),
            "default_member": self.members[0].name,
            "measured": self._measured_at,
            "elastic": None if space is None else space.to_dict(),
            "attncoach_version": __version__,
            "model_format_version": self._format_version,
            "source": str(self._source),
        }

    def predict(self, texts: list[str], member: str) -> list[dict[str, Any]]:
        """One ``{"label", "probabilities"}`` per text, from the named member."""
        self._require("text_classification", "predict labels for texts")
        self._switch(member)
        return self.predictor.predict(texts)

    def recommend(
        self, users: list[str] | None, histories: list[list[str]] | None, k: int, member: str
    ) -> list[list[dict[str, Any]]]:
        """The top ``k`` items per user or history (their own items left out), from the named member."""
        self._require("next_item", "recommend items")
        self._switch(member)
        return self.predictor.recommend_many(users=users, histories=histories, k=k)

    def _require(self, task: str, what: str) -> None:
        if self.task != task:
            raise AttncoachError(f"this {self.task} model cannot {what}; that needs a {task} model")

    def _switch(self, member: str) -> None:
        """Make ``member`` the model's active sub-net (in place; only the inference thread calls this)."""
        if member not in self._subnets:
            names = ", ".join(m.name for m in self.members)
            raise AttncoachError(f"unknown member {member!r}; this model serves: {names}")
        if member != self._active:
            self.predictor.model.set_subnet(self._subnets[member])
            self._active = member


def member_subnets(predictor: Any) -> dict[str, Any]:
    """Member name -> SubnetConfig: the uniform grid of an elastic model's trained space, else ``{"full": ...}``.

    Widths that round to the same heads and neurons (small models) are one member, named by the
    largest of them.
    """
    from attncoach.elastic.search import uniform_genomes
    from attncoach.elastic.space import saved_space
    from attncoach.models.encoder import SubnetConfig

    space = saved_space(predictor)
    if space is None:
        return {"full": SubnetConfig()}
    config = predictor.model.encoder.config
    by_subnet: dict[Any, str] = {}
    for genome in reversed(uniform_genomes(space)):  # largest first: a duplicate keeps the larger name
        subnet = genome.candidate(config).subnet
        width = genome.widths[0]
        ffn = None if genome.ffn_widths is None else genome.ffn_widths[0]
        by_subnet.setdefault(subnet, member_name(width, genome.depth, ffn))
    return {name: subnet for subnet, name in by_subnet.items()}


def members_json(members: Sequence[MemberInfo]) -> list[dict[str, Any]]:
    """The members as ``GET /v1/model`` lists them (latency keys as strings, as JSON has them)."""
    return [
        {
            "name": m.name,
            "parameters": m.parameters,
            "runtime": m.runtime,
            "latency_ms": {str(b): ms for b, ms in m.latency_ms.items()},
        }
        for m in members
    ]


def member_name(width: float, depth: float, ffn_width: float | None = None) -> str:
    """The name of a uniform sub-net: what it keeps below 1, e.g. ``w0.5-d0.5``; ``full`` keeps everything.

    Example:
        >>> member_name(1.0, 1.0), member_name(0.5, 1.0), member_name(0.25, 0.5), member_name(1.0, 1.0, 0.5)
        ('full', 'w0.5', 'w0.25-d0.5', 'f0.5')
    """
    parts = [
        f"{key}{value:g}" for key, value in (("w", width), ("f", ffn_width), ("d", depth)) if value not in (None, 1.0)
    ]
    return "-".join(parts) or "full"


def timing_sequences(config: Any, length: int, count: int) -> list[list[int]]:
    """``count`` sequences of ``length`` token (or item) ids of an encoder ``config``, seeded: the inputs
    latency is measured on (at most ``config.max_position`` long).

    Which ids they are does not change the time of a forward pass; their length does.
    """
    import numpy as np

    length = max(1, min(int(length), config.max_position))
    rng = np.random.default_rng(0)
    high = config.vocab_size
    return rng.integers(min(1, high - 1), high, size=(count, length)).tolist()
