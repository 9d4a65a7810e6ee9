"""A model family: several exported sub-nets of one model, with their measured latencies, served together.

```
DIR/
  family.json            {"format", "format_version", "attncoach_version", "task", "source", "run",
                          "split", "threads", "batch_sizes", "quantization", "onnx", "measured", "members": [
                            {"name", "width", "depth", "subnet", "parameters", "runtime", "quantization",
                             "latency_ms": {"1": ms, "32": ms}, "file_bytes": {file: bytes}, "path",
                             "parity": {...} | null}, ...]}
  members/<name>/        each a complete model directory (attncoach.models.saved)
```

Members are listed largest first (``members[0]`` is the default). Each is one uniform sub-net
(a width and a depth, named like ``full``, ``w0.5``, ``w0.5-d0.5``) exported with
:func:`attncoach.elastic.export.export_model_dir`: float32 (runtime ``torch``), int8 (runtime
``int8``) or with an ONNX graph (runtime ``onnx``, int8 too with ``quantize``). Its latency is
the median time of one forward pass (a recommender's includes scoring every item) at each batch
size, timed on this machine with :func:`attncoach.elastic.measure.measure_latency` over
sequences of the model's longest input (so that a budget met here is met by any input), in the
runtime the member is served with. ``parity`` compares it with the float32 torch model of the
same sub-net on the run's test split (:mod:`attncoach.serve.parity`); null for a bare model
directory.

:func:`load_family` loads such a directory as a :class:`FamilyModel`, the
:class:`attncoach.serve.served.ServedModel` the server answers with.

Example:
    >>> export_family("runs/tweets/model", "models/tweets-family", family_members(clf), quantize="int8")  # doctest: +SKIP
    >>> served = load_family("models/tweets-family")                        # doctest: +SKIP
    >>> served.predict(["the flight was late again"], member="w0.25-d0.5")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from attncoach.atomicfile import atomic_write_json
from attncoach.elastic.export import check_export_dir, check_quantization, export_model_dir, write_dir_atomically
from attncoach.elastic.measure import measure_latency
from attncoach.elastic.space import subnet_for
from attncoach.errors import AttncoachError
from attncoach.models.encoder import SubnetConfig
from attncoach.models.onnx_graph import ONNX_FILE, require_onnx
from attncoach.models.quantized import INT8
from attncoach.models.saved import load_model, read_model_config
from attncoach.serve.parity import parity
from attncoach.serve.served import MemberInfo, member_name, members_json, timing_sequences

log = logging.getLogger("attncoach")

FAMILY_FILE = "family.json"
FAMILY_FORMAT = "attncoach.family"
FAMILY_VERSION = 1
MEMBERS_DIR = "members"
BATCH_SIZES = (1, 32)


@dataclass(frozen=True)
class FamilyMember:
    """A member to export: its name, its width and depth, and its sub-net of the source model."""

    name: str
    width: float
    depth: float
    subnet: SubnetConfig


def family_members(
    predictor: Any, widths: Sequence[float] | None = None, depths: Sequence[float] | None = None
) -> list[FamilyMember]:
    """Every width x depth as a member, largest first; by default the model's trained grid.

    Widths that round to the same heads and neurons (small models) are one member, named by
    the largest of them. A width or depth outside an elastic model's trained space is refused.

    Raises:
        AttncoachError: a width or depth outside (0, 1] or outside the trained space.
    """
    from attncoach.elastic.search import search_space
    from attncoach.elastic.space import saved_space

    space = search_space(predictor) if widths is None or depths is None else None
    widths = sorted(set(widths if widths is not None else space.widths), reverse=True)
    depths = sorted(set(depths if depths is not None else space.depths), reverse=True)
    trained = saved_space(predictor)
    if trained is None and space is None and (min(widths) < 1 or min(depths) < 1):
        log.warning("the model was not trained elastically: its sub-nets were never trained; expect lower quality")
    config = predictor.model.encoder.config
    members: dict[SubnetConfig, FamilyMember] = {}
    for depth in depths:
        for width in widths:
            subnet = subnet_for(config, width, depth)
            if trained is not None:
                trained.check(width, depth)
            members.setdefault(subnet, FamilyMember(member_name(width, depth), width, depth, subnet))
    return list(members.values())


def member_runtime(quantize: str | None, onnx: bool) -> str:
    """The runtime a member is served with: ``onnx`` with an ONNX graph, else ``int8`` or ``torch``."""
    if onnx:
        return "onnx"
    return "int8" if quantize == INT8 else "torch"


def export_family(
    model_dir: str | Path,
    out_dir: str | Path,
    members: Sequence[FamilyMember],
    quantize: str | None = None,
    onnx: bool = False,
    split: Any = None,
    run: str | None = None,
    batch_sizes: Sequence[int] = BATCH_SIZES,
) -> dict[str, Any]:
    """Export ``members`` of the model in ``model_dir`` into a family directory, measured and checked.

    Args:
        model_dir: the source model directory (float32).
        out_dir: a new or empty folder; written through a temporary folder, so a failure leaves nothing.
        members: the sub-nets to export (:func:`family_members`).
        quantize: ``"int8"`` or None.
        onnx: add an ONNX graph to each member and serve it with ONNX Runtime.
        split: the run's test split, for parity; None skips parity (a bare model directory).
        run: the run directory the split comes from (recorded).
        batch_sizes: the batch sizes latency is measured at (1 is always among them).

    Returns:
        The content of ``family.json``.

    Raises:
        AttncoachError: a bad ``out_dir`` or option, a damaged or int8 source, no member.
    """
    check_quantization(quantize)
    if onnx:
        require_onnx()
    if not members:
        raise AttncoachError("a family needs at least one member")
    out_dir = check_export_dir(out_dir)
    model_dir = Path(model_dir)
    reference = load_model(model_dir)
    if reference.quantization is not None:
        raise AttncoachError(
            f"{model_dir} is already an {reference.quantization} model: export from the float32 model it came from"
        )
    sizes = sorted({1, *batch_sizes})
    runtime = member_runtime(quantize, onnx)
    manifest: dict[str, Any] = {
        "format": FAMILY_FORMAT,
        "format_version": FAMILY_VERSION,
        "attncoach_version": _version(),
        "task": reference.task,
        "source": str(model_dir),
        "run": run,
        "split": None if split is None else "test",
        "threads": torch.get_num_threads(),
        "batch_sizes": sizes,
        "quantization": quantize,
        "onnx": onnx,
        "measured": {
            "tokens": reference.max_length,
            "statistic": "median milliseconds per forward pass of one batch",
        },
        "members": [],
    }

    def write(folder: Path) -> None:
        for number, member in enumerate(members, 1):
            path = folder / MEMBERS_DIR / member.name
            export_model_dir(model_dir, member.subnet, path, f"--width {member.width:g} --depth {member.depth:g}",
                             quantize=quantize, onnx=onnx)  # fmt: skip
            entry = _measure_member(reference, member, path, runtime, split, sizes)
            entry["path"] = f"{MEMBERS_DIR}/{member.name}"
            manifest["members"].append(entry)
            shown = ", ".join(f"{ms:.2f} ms at batch {b}" for b, ms in entry["latency_ms"].items())
            log.info("member %d/%d %s (%s): %s parameters, %s", number, len(members), member.name, runtime,
                     f"{entry['parameters']:,}", shown)  # fmt: skip
        manifest["members"].sort(key=lambda m: -m["parameters"])
        atomic_write_json(folder / FAMILY_FILE, manifest)

    write_dir_atomically(out_dir, write)
    return manifest


def _measure_member(
    reference: Any, member: FamilyMember, path: Path, runtime: str, split: Any, sizes: Sequence[int]
) -> dict[str, Any]:
    """A member's family.json entry: size, latency in its runtime and parity."""
    exported = read_model_config(path)["exported_from"]
    loaded = load_model(path, runtime="onnx" if runtime == "onnx" else "torch")
    timed = _Timed(loaded.model, loaded.task)
    ids = timing_sequences(reference.model.encoder.config, reference.max_length, 2 * sizes[-1])
    latency = {b: measure_latency(timed, ids, b, repeats=5, warmup=2, batches=2) for b in sizes}
    report = None
    if split is not None:
        reference.model.set_subnet(member.subnet)
        try:
            report = parity(reference, [loaded], split)
        finally:
            reference.model.set_subnet(None)
    files = [name for name in ("model.safetensors", ONNX_FILE) if (path / name).is_file()]
    return {
        "name": member.name,
        "width": member.width,
        "depth": member.depth,
        "subnet": member.subnet.to_dict(),
        "parameters": exported["parameters"],
        "runtime": runtime,
        "quantization": loaded.quantization,
        "latency_ms": {str(b): ms for b, ms in latency.items()},
        "file_bytes": {name: (path / name).stat().st_size for name in files},
        "parity": report,
    }


class _Timed(torch.nn.Module):
    """What one request costs: a classifier's forward pass, or a recommender's scores of every item."""

    def __init__(self, model: torch.nn.Module, task: str) -> None:
        super().__init__()
        self.model = model
        self.task = task

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.task == "next_item":
            return self.model.next_item_scores(input_ids, attention_mask)
        return self.model(input_ids, attention_mask)


def _version() -> str:
    from attncoach import __version__

    return __version__


# ---------------------------------------------------------------- loading
class FamilyModel:
    """A family directory loaded for serving: every member loaded in its runtime (a ``ServedModel``).

    Use :func:`load_family`. Members are separate models, so answering with one never disturbs another.
    """

    def __init__(self, path: Path, manifest: dict[str, Any], predictors: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self.task: str = manifest["task"]
        self._predictors = predictors
        self.members = [
            MemberInfo(
                m["name"], int(m["parameters"]), {int(b): float(ms) for b, ms in m["latency_ms"].items()}, m["runtime"]
            )
            for m in manifest["members"]
        ]

    def describe(self) -> dict[str, Any]:
        """JSON for GET /v1/model: task, labels and calibration or item count, members with their latencies,
        versions, source."""
        first = self._predictors[self.members[0].name]
        about: dict[str, Any] = {"task": self.task}
        if self.task == "text_classification":
            about["labels"] = list(first.labels)
            about["calibration"] = first.calibration  # copied into every member by the export
        else:
            about["items"] = len(first.items)
            about["users"] = len(first.users)
        return {
            **about,
            "max_length": first.max_length,
            "members": members_json(self.members),
            "default_member": self.members[0].name,
            "measured": {**self.manifest.get("measured", {}), "threads": self.manifest.get("threads")},
            "attncoach_version": _version(),
            "model_format_version": max(
                read_model_config(p.model_dir).get("format_version", 1) for p in self._predictors.values()
            ),
            "family_format_version": self.manifest["format_version"],
            "source": str(self.path),
        }

    def predict(self, texts: list[str], member: str) -> list[dict[str, Any]]:
        """One ``{"label", "probabilities"}`` per text, from the named member."""
        self._require("text_classification", "predict labels for texts")
        return self._member(member).predict(texts)

    def recommend(
        self, users: list[str] | None, histories: list[list[str]] | None, k: int, member: str
    ) -> list[list[dict[str, Any]]]:
        """The top ``k`` items per user or history (their own items left out), from the named member."""
        self._require("next_item", "recommend items")
        return self._member(member).recommend_many(users=users, histories=histories, k=k)

    def _require(self, task: str, what: str) -> None:
        if self.task != task:
            raise AttncoachError(f"this {self.task} model cannot {what}; that needs a {task} model")

    def _member(self, name: str) -> Any:
        if name not in self._predictors:
            names = ", ".join(m.name for m in self.members)
            raise AttncoachError(f"unknown member {name!r}; this model serves: {names}")
        return self._predictors[name]


def is_family(path: str | Path) -> bool:
    """Whether ``path`` is a family directory (it holds ``family.json``)."""
    return (Path(path) / FAMILY_FILE).is_file()


def load_family(path: str | Path) -> FamilyModel:
    """Load a family directory written by :func:`export_family`, every member in its runtime.

    Raises:
        AttncoachError: no ``family.json``, a damaged one, or a missing or damaged member.
    """
    path = Path(path)
    manifest = read_family(path)
    predictors = {}
    for entry in manifest["members"]:
        member_dir = path / MEMBERS_DIR / entry["name"]
        if not (member_dir / "model_config.json").is_file():
            raise AttncoachError(f"family {path} lacks its member {entry['name']!r} ({member_dir})")
        predictor = load_model(member_dir, runtime="onnx" if entry["runtime"] == "onnx" else "torch")
        if predictor.task != manifest["task"]:
            raise AttncoachError(
                f"member {entry['name']!r} of {path} is a {predictor.task} model, not {manifest['task']}"
            )
        predictors[entry["name"]] = predictor
    return FamilyModel(path, manifest, predictors)


def read_family(path: Path) -> dict[str, Any]:
    """``family.json`` of a family directory, checked."""
    file = Path(path) / FAMILY_FILE
    if not file.is_file():
        raise AttncoachError(
            f"{path} is not a model family (no {FAMILY_FILE}): export one with attncoach export --family"
        )
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise AttncoachError(f"{file} is not valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FAMILY_FORMAT:
        raise AttncoachError(f"{file} is not an attncoach family file")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FAMILY_VERSION:
        raise AttncoachError(
            f"{file} was written by a newer attncoach (family format {version!r}; this one reads up to "
            f"{FAMILY_VERSION}): upgrade attncoach"
        )
    try:
        _check_members(manifest)
    except (KeyError, TypeError, ValueError) as exc:
        raise AttncoachError(f"{file} is damaged ({type(exc).__name__}: {exc})") from None
    return manifest


def _check_members(manifest: dict[str, Any]) -> None:
    members = manifest["members"]
    if not isinstance(members, list) or not members:
        raise ValueError("no members")
    names = [m["name"] for m in members]
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n and "/" not in n for n in names):
        raise ValueError("member names must be unique plain names")
    for m in members:
        int(m["parameters"])
        if m["runtime"] not in ("torch", "int8", "onnx"):
            raise ValueError(f"unknown runtime {m['runtime']!r}")
        latency = {int(b): float(ms) for b, ms in m["latency_ms"].items()}
        if 1 not in latency:
            raise ValueError(f"member {m['name']!r} has no latency at batch 1")
    if manifest["task"] not in ("text_classification", "next_item"):
        raise ValueError(f"unknown task {manifest['task']!r}")
