"""Export a sub-network as a standalone model whose weights are physically smaller.

:meth:`ElasticEncoder.set_subnet` runs a sub-net by slicing views of the full weights, so the
file on disk and the memory stay those of the full model. :func:`export_subnet` copies the
slices instead: the kept layers only and, in each, the first ``k`` heads (their rows of the
fused ``[q; k; v]`` projection and their columns of the output projection) and the first
``n`` FFN neurons (rows of ``fc1`` with their biases, columns of ``fc2``). The result is a
plain model of the same class (a :class:`TextClassifier`, a :class:`NextItemModel`...) whose :class:`EncoderConfig` lists each layer's heads and FFN
width, and it computes what the masked supernet computes.

:func:`export_model_dir` does this for a saved model directory and writes a new one that
``eval``, ``predict``, ``recommend`` and :func:`attncoach.models.saved.load_model` read like any other;
optionally in int8 (:mod:`attncoach.models.quantized`: every Linear and embedding table) and with
an ONNX graph beside the weights (:mod:`attncoach.models.onnx_graph`).

Example:
    >>> config = EncoderConfig(vocab_size=50, dim=16, layers=3, heads=4, ffn_dim=32)
    >>> model = TextClassifier(config, num_labels=2)
    >>> small = export_subnet(model, SubnetConfig(layers=(0, 2), heads=(2, 4, 1), ffn=None))
    >>> small.encoder.config.layer_heads, small.encoder.config.layer_ffn
    ([2, 1], [32, 32])
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from attncoach.atomicfile import atomic_save_safetensors, fsync_dir
from attncoach.errors import AttncoachError
from attncoach.models.encoder import EncoderConfig, SubnetConfig
from attncoach.models.onnx_graph import ONNX_FILE, export_onnx, require_onnx
from attncoach.models.quantized import INT8, quantize_int8
from attncoach.models.saved import CALIBRATION_FILE, QUANTIZATIONS, write_model_config
from attncoach.rundir import TASK_FILES

# How each per-layer tensor keeps the first heads (width w = k * Dh of the inner width I)
# or the first FFN neurons (n); tensors not listed (norms, output biases) are kept whole.
_HEAD_SLICES: dict[str, Callable[[Tensor, int], Tensor]] = {
    "attn.qkv.weight": lambda t, w: t.view(3, -1, t.shape[1])[:, :w].reshape(-1, t.shape[1]),  # (3w, D)
    "attn.qkv.bias": lambda t, w: t.view(3, -1)[:, :w].reshape(-1),  # (3w,)
    "attn.out.weight": lambda t, w: t[:, :w],  # (D, w)
    # a decoder layer's cross-attention keeps as many heads as its self-attention
    "cross.q.weight": lambda t, w: t[:w],  # (w, D)
    "cross.q.bias": lambda t, w: t[:w],  # (w,)
    "cross.kv.weight": lambda t, w: t.view(2, -1, t.shape[1])[:, :w].reshape(-1, t.shape[1]),  # (2w, D)
    "cross.kv.bias": lambda t, w: t.view(2, -1)[:, :w].reshape(-1),  # (2w,)
    "cross.out.weight": lambda t, w: t[:, :w],  # (D, w)
}
_NEURON_SLICES: dict[str, Callable[[Tensor, int], Tensor]] = {
    "ffn.fc1.weight": lambda t, n: t[:n],  # (n, D)
    "ffn.fc1.bias": lambda t, n: t[:n],  # (n,)
    "ffn.fc2.weight": lambda t, n: t[:, :n],  # (D, n)
}
_LAYER_KEY = re.compile(r"encoder\.layers\.(\d+)\.(.+)")


def export_subnet(model: torch.nn.Module, subnet: SubnetConfig) -> torch.nn.Module:
    """A new standalone model of the same class holding copies of ``subnet``'s weights only.

    Embeddings, the final norm and the head are copied whole; dropout settings and the
    training mode are kept. ``model`` is not changed.

    Args:
        model: The source classifier (a supernet, or an exported model again).
        subnet: The sub-network to keep, per layer of ``model``.

    Returns:
        A classifier on the device and dtype of ``model`` that computes what ``model``
        computes after ``model.set_subnet(subnet)``.

    Raises:
        ValueError: If ``subnet`` does not fit ``model``.
    """
    source = model.encoder.config
    model.encoder.check_subnet(subnet)
    kept = list(subnet.layers) if subnet.layers is not None else list(range(source.layers))
    heads = subnet.heads if subnet.heads is not None else source.heads_per_layer()
    ffn = subnet.ffn if subnet.ffn is not None else source.ffn_per_layer()
    config = _exported_config(source, [heads[i] for i in kept], [ffn[i] for i in kept])
    rebuild = getattr(model, "sliced_config_dict", None)  # a model whose other keys depend on the kept layers
    data = rebuild(kept, config) if rebuild is not None else {**model.config_dict(), "encoder": config.to_dict()}
    exported = type(model).from_config_dict(data)
    new_index = {old: new for new, old in enumerate(kept)}
    state = {}
    for key, tensor in model.state_dict().items():
        match = _LAYER_KEY.fullmatch(key)
        if match is None:
            state[key] = tensor
            continue
        old = int(match[1])
        if old in new_index:
            width = heads[old] * source.resolved_head_dim()
            sliced = _slice_layer_tensor(match[2], tensor, width, ffn[old])
            state[f"encoder.layers.{new_index[old]}.{match[2]}"] = sliced
    exported.load_state_dict(state)  # strict: every exported tensor must come from the source
    first = next(model.parameters())
    return exported.to(device=first.device, dtype=first.dtype).train(model.training)


def _exported_config(source: EncoderConfig, heads: list[int], ffn: list[int]) -> EncoderConfig:
    return dataclasses.replace(
        source,
        layers=len(heads),
        heads=max(heads),
        ffn_dim=max(ffn),
        head_dim=source.resolved_head_dim(),
        layer_heads=heads,
        layer_ffn=ffn,
    )


def _slice_layer_tensor(name: str, tensor: Tensor, head_width: int, neurons: int) -> Tensor:
    if name in _HEAD_SLICES:
        return _HEAD_SLICES[name](tensor, head_width)
    if name in _NEURON_SLICES:
        return _NEURON_SLICES[name](tensor, neurons)
    return tensor


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_model_dir` wrote.

    Attributes:
        out_dir: The new model directory.
        subnet: The exported sub-network, per layer of the source model.
        parameters: Parameters of the exported classifier.
        source_parameters: Parameters of the source classifier.
        file_bytes: Size of the exported ``model.safetensors``.
        source_file_bytes: Size of the source ``model.safetensors``.
        quantization: ``"int8"`` or None (float32).
        onnx_file_bytes: Size of ``model.onnx``, or None without one.
    """

    out_dir: Path
    subnet: SubnetConfig
    parameters: int
    source_parameters: int
    file_bytes: int
    source_file_bytes: int
    quantization: str | None = None
    onnx_file_bytes: int | None = None


def check_export_dir(out_dir: str | Path) -> Path:
    """Refuse an out dir that holds anything, or that cannot be a folder (missing parents are made later).

    Raises:
        AttncoachError: one line naming the problem.
    """
    out_dir = Path(out_dir)
    blocking = next((parent for parent in out_dir.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise AttncoachError(f"export path {out_dir} lies under {blocking}, which is a file, not a folder")
    if out_dir.exists():
        if not out_dir.is_dir():
            raise AttncoachError(f"export path {out_dir} exists and is not a directory")
        if any(out_dir.iterdir()):
            raise AttncoachError(f"export folder {out_dir} is not empty; choose a new or empty folder")
    return out_dir


def export_model_dir(
    model_dir: str | Path,
    subnet: SubnetConfig,
    out_dir: str | Path,
    source_description: str | None = None,
    quantize: str | None = None,
    onnx: bool = False,
) -> ExportSummary:
    """Write ``subnet`` of the model in ``model_dir`` as a new, complete model directory.

    The new directory holds ``model.safetensors``, ``model_config.json`` (with an
    ``"exported_from"`` record and no elastic space: the result is a plain fixed model),
    and the task's own files (``tokenizer.json`` and ``labels.json``; ``items.json`` and
    ``users.json``), and the source's ``calibration.json`` when it has one; with ``onnx``, also ``model.onnx``. It is written into a temporary folder
    beside ``out_dir`` and renamed into place, so a failure leaves nothing behind.

    Args:
        model_dir: A model directory (the ``model/`` folder of a run).
        subnet: The sub-network to keep, per layer of the source model (``SubnetConfig()``: all of it).
        out_dir: A new or empty folder whose parent exists.
        source_description: How the user named the sub-net (``"--width 0.5"``), recorded in
            ``"exported_from"``.
        quantize: ``"int8"``: int8 weights and embedding tables (and an int8 ONNX graph), else None.
        onnx: Also write the ONNX graph, ``model.onnx`` (needs ``pip install 'attncoach[onnx]'``).

    Returns:
        An :class:`ExportSummary`.

    Raises:
        AttncoachError: A bad ``out_dir``, a damaged model directory, an int8 source, a sub-net
            that does not fit the model, an unknown ``quantize``, or ``onnx`` without its packages.

    Example:
        >>> export_model_dir("runs/tweets/model", subnet, "runs/tweets-half")  # doctest: +SKIP
        >>> export_model_dir("runs/tweets/model", SubnetConfig(), "models/tweets-int8", quantize="int8")  # doctest: +SKIP
    """
    from attncoach.models.saved import load_model, model_config

    check_quantization(quantize)
    if onnx:
        require_onnx()
    out_dir = check_export_dir(out_dir)
    model_dir = Path(model_dir)
    source = load_model(model_dir)
    if source.quantization is not None:
        raise AttncoachError(
            f"{model_dir} is already an {source.quantization} model: export from the float32 model it came from"
        )
    try:
        exported = export_subnet(source.model, subnet)
    except ValueError as exc:
        raise AttncoachError(f"sub-net does not fit {model_dir}: {exc}") from None
    record: dict[str, Any] = {
        "model": str(model_dir),
        "subnet": subnet.to_dict(),
        "parameters": _count(exported),
        "source_parameters": _count(source.model),
    }
    if source_description is not None:
        record["named_by"] = source_description
    weights = quantize_int8(exported) if quantize == INT8 else exported

    def write(folder: Path) -> None:
        graph = export_onnx(exported, source.task, folder / ONNX_FILE, quantize=quantize == INT8) if onnx else None
        config = model_config(
            exported, source.max_length, task=source.task, exported_from=record, quantization=quantize, onnx=graph
        )
        _write_model_files(folder, model_dir, weights, config, source.task)

    write_dir_atomically(out_dir, write)
    return ExportSummary(
        out_dir,
        subnet,
        record["parameters"],
        record["source_parameters"],
        (out_dir / "model.safetensors").stat().st_size,
        (model_dir / "model.safetensors").stat().st_size,
        quantize,
        (out_dir / ONNX_FILE).stat().st_size if onnx else None,
    )


def check_quantization(quantize: Any) -> None:
    """Refuse a quantization other than None and those the model format knows (``int8``)."""
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise AttncoachError(f"unknown quantization {quantize!r}: choose {' or '.join(QUANTIZATIONS)}")


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _write_model_files(
    folder: Path, model_dir: Path, model: torch.nn.Module, config: dict[str, Any], task: str
) -> None:
    atomic_save_safetensors(model.state_dict(), folder / "model.safetensors")
    write_model_config(folder, config)
    for name in TASK_FILES[task]:
        shutil.copyfile(model_dir / name, folder / name)
    if (model_dir / CALIBRATION_FILE).is_file():  # the source's temperature (fitted on the full model's val logits)
        shutil.copyfile(model_dir / CALIBRATION_FILE, folder / CALIBRATION_FILE)


def write_dir_atomically(out_dir: Path, write: Callable[[Path], None]) -> None:
    """Run ``write`` on a temporary folder beside ``out_dir``, then rename it to ``out_dir``."""
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AttncoachError(f"cannot create the export folder's parent {out_dir.parent}: {exc.strerror}") from None
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)  # left over by a killed export of the same process id
    tmp.mkdir()
    try:
        write(tmp)
        fsync_dir(tmp)
        os.replace(tmp, out_dir)  # replaces an empty out_dir, as rename(2) allows
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(out_dir.parent)
