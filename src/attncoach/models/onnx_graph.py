"""ONNX: a model's inference graph in ``model.onnx``, and ONNX Runtime running it in place of the torch model.

The graph takes ``input_ids`` and ``attention_mask`` (int64, ``(batch, sequence)``, both axes
dynamic, the sequence up to the model's ``max_position``) and gives, per task:

- ``text_classification``: ``logits`` ``(batch, num_labels)``;
- ``next_item``: ``scores`` ``(batch, num_items + 1)`` of every item as the next one after each
  right-padded history (:meth:`NextItemModel.next_item_scores`; column 0, padding, is ``-inf``);
- ``image_classification``: its one input is ``pixels`` (float32 ``(batch, C, H, W)``, 0..1, the
  batch axis dynamic), its output ``logits`` ``(batch, num_labels)``.

:func:`export_onnx` writes it with PyTorch's ONNX exporter (``torch.export`` based, which needs
``onnxscript``), opset :data:`OPSET`, as one self-contained file; ``quantize=True`` then
quantises it to int8 with ONNX Runtime's dynamic quantisation (MatMul weights and embedding
tables). :class:`OnnxModel` loads it into an ONNX Runtime session and answers like the torch
model, so :func:`attncoach.models.saved.predict_logits` and the latency measurements run it
unchanged. Both need the ``onnx`` extra: ``pip install 'attncoach[onnx]'``.

Example:
    >>> export_onnx(model, "text_classification", Path("out/model.onnx"))  # doctest: +SKIP
    >>> OnnxModel(Path("out/model.onnx"), "text_classification")(ids, mask).shape  # doctest: +SKIP
    torch.Size([2, 3])
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from attncoach.errors import AttncoachError

ONNX_FILE = "model.onnx"
OPSET = 18
INPUTS = ("input_ids", "attention_mask")
OUTPUTS = {"text_classification": "logits", "next_item": "scores", "image_classification": "logits"}
IMAGE_INPUTS = ("pixels",)  # image_classification: the images, float32 (batch, C, H, W)
EXTRA = "pip install 'attncoach[onnx]'"


def require_onnx(*modules: str) -> None:
    """Refuse, in one line naming the extra, when a package of the ``onnx`` extra is missing."""
    import importlib.util

    for name in modules or ("onnx", "onnxruntime", "onnxscript"):
        if importlib.util.find_spec(name) is None:
            raise AttncoachError(f"ONNX needs the package {name}, which is not installed: {EXTRA}")


class _InferenceGraph(nn.Module):
    """What the ONNX graph computes: the task's outputs from token (or item) ids and the padding mask."""

    def __init__(self, model: nn.Module, task: str) -> None:
        super().__init__()
        self.model = model
        self.task = task

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        mask = attention_mask.to(torch.bool)
        if self.task == "next_item":
            return self.model.next_item_scores(input_ids, mask)  # (B, V + 1)
        return self.model(input_ids, mask)  # (B, C)


def export_onnx(model: nn.Module, task: str, path: Path, quantize: bool = False) -> dict[str, Any]:
    """Write ``model`` (a fixed float model: an exported sub-net or a full model) as an ONNX graph.

    Args:
        model: A :class:`TextClassifier` or :class:`NextItemModel` (its active sub-net must be its
            whole self: export sub-nets with :func:`attncoach.elastic.export.export_subnet` first).
        task: ``text_classification`` or ``next_item``.
        path: The file to write (``model.onnx``).
        quantize: Quantise the graph's weights to int8 (ONNX Runtime dynamic quantisation).

    Returns:
        The ``onnx`` record of ``model_config.json``: file, opset, inputs, output, quantization.

    Raises:
        AttncoachError: a package of the ``onnx`` extra is missing, or the exporter fails.
    """
    require_onnx()
    if task not in OUTPUTS:
        raise AttncoachError(f"ONNX export knows the tasks {', '.join(OUTPUTS)}, not {task!r}")
    if task == "image_classification":
        return _export_image_graph(model, path, quantize)
    graph = _InferenceGraph(model, task).float().cpu().eval()
    max_position = model.encoder.config.max_position
    length = min(max_position, 8)
    ids = torch.ones(2, length, dtype=torch.long)
    mask = torch.ones(2, length, dtype=torch.long)
    batch = torch.export.Dim("batch")
    sequence = torch.export.Dim("sequence", max=max_position) if max_position > 1 else None
    axes = {0: batch} if sequence is None else {0: batch, 1: sequence}
    try:
        with _quiet_exporter():
            torch.onnx.export(
                graph,
                (ids, mask),
                str(path),
                input_names=list(INPUTS),
                output_names=[OUTPUTS[task]],
                dynamic_shapes={"input_ids": axes, "attention_mask": axes},
                opset_version=OPSET,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many kinds; one line says which step failed
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AttncoachError(f"ONNX export failed: {first}") from None
    return _finish(path, task, INPUTS, quantize)


def _export_image_graph(model: nn.Module, path: Path, quantize: bool) -> dict[str, Any]:
    """An image classifier's graph: ``pixels`` ``(batch, C, H, W)`` -> ``logits``."""
    patches = model.patches
    pixels = torch.rand(2, patches.channels, *patches.image_size)
    try:
        with _quiet_exporter():
            torch.onnx.export(
                model.float().cpu().eval(),
                (pixels,),
                str(path),
                input_names=list(IMAGE_INPUTS),
                output_names=[OUTPUTS["image_classification"]],
                dynamic_shapes={"pixels": {0: torch.export.Dim("batch")}},
                opset_version=OPSET,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many kinds; one line says which step failed
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AttncoachError(f"ONNX export failed: {first}") from None
    return _finish(path, "image_classification", IMAGE_INPUTS, quantize)


def _finish(path: Path, task: str, inputs: tuple[str, ...], quantize: bool) -> dict[str, Any]:
    """Strip the exporter's notes, quantise when asked; the ``onnx`` record of ``model_config.json``."""
    _strip_metadata(path)
    if quantize:
        _quantize_graph(path)
    return {
        "file": path.name,
        "opset": OPSET,
        "inputs": list(inputs),
        "output": OUTPUTS[task],
        "quantization": "int8" if quantize else None,
    }


def _strip_metadata(path: Path) -> None:
    """Drop the exporter's per-node notes (source stack traces, module names), most of a small graph's bytes."""
    import onnx

    graph = onnx.load(str(path))
    for node in graph.graph.node:
        del node.metadata_props[:]
    for function in graph.functions:
        for node in function.node:
            del node.metadata_props[:]
    onnx.save(graph, str(path))


def _quantize_graph(path: Path) -> None:
    """Quantise the weights of the graph in ``path`` to int8, in place (ONNX Runtime, dynamic)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = path.with_name(path.name + ".int8")
    try:
        with _quiet_exporter():
            quantize_dynamic(
                str(path), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm", "Gather"]
            )
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's and the quantiser's progress lines and warnings (they are not the user's business)."""
    loggers = [logging.getLogger(name) for name in ("", "torch.onnx", "torch.export", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


class OnnxModel(nn.Module):
    """An ONNX Runtime session that stands in for the torch model it was exported from.

    Called with ``(input_ids, attention_mask)`` it returns the graph's output as a float32
    CPU tensor (logits, or next-item scores; :meth:`next_item_scores` is the same call). It
    is an ``nn.Module`` only so that code written for torch models (``eval()``, ``training``,
    the device of its first parameter) runs it too; its one parameter, ``device_anchor``, is an
    empty tensor on the CPU, where the session runs, so that the device lookup says so.

    Args:
        path: The ``model.onnx`` file.
        task: The task it was exported for.
        threads: ONNX Runtime's intra-op threads (default: torch's, so that timings compare).

    Raises:
        AttncoachError: onnxruntime is not installed, or the file is not a valid graph.
    """

    def __init__(self, path: Path, task: str, threads: int | None = None) -> None:
        super().__init__()
        require_onnx("onnxruntime")
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise AttncoachError(f"{path} is not a valid ONNX model ({first[:200]})") from None
        self.task = task
        self.path = Path(path)
        self.input_names = [i.name for i in self.session.get_inputs()]
        expected = IMAGE_INPUTS if task == "image_classification" else INPUTS
        if self.input_names != list(expected):
            raise AttncoachError(f"{path} takes the inputs {self.input_names}, not {list(expected)}")
        self.output_width = self.session.get_outputs()[0].shape[-1]  # num_labels or num_items + 1 (an int)
        self.device_anchor = nn.Parameter(torch.empty(0), requires_grad=False)  # the session runs on the CPU
        self.eval()

    @torch.inference_mode()
    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """The graph's output for a batch ``(B, T)``: ``(B, num_labels)`` or ``(B, num_items + 1)``; an image
        graph reads ``input_ids`` as the images ``(B, C, H, W)`` (as the torch image model does)."""
        if self.input_names == list(IMAGE_INPUTS):
            (output,) = self.session.run(None, {"pixels": input_ids.detach().cpu().float().numpy()})
            return torch.from_numpy(output).float()
        if attention_mask is None:
            attention_mask = input_ids != 0
        feed = {
            "input_ids": input_ids.detach().cpu().to(torch.long).numpy(),
            "attention_mask": attention_mask.detach().cpu().to(torch.long).numpy(),
        }
        (output,) = self.session.run(None, feed)
        return torch.from_numpy(output).float()

    @property
    def num_labels(self) -> int:
        """A classification graph's number of labels."""
        return int(self.output_width)

    @property
    def num_items(self) -> int:
        """A next-item graph's number of items (its scores have one more column: padding)."""
        return int(self.output_width) - 1

    def next_item_scores(self, item_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """For a next-item graph: the scores of every item after each history (see the module doc)."""
        return self(item_ids, attention_mask)

    def extra_repr(self) -> str:
        return f"path={str(self.path)!r}, task={self.task!r}"


__all__ = ["IMAGE_INPUTS", "INPUTS", "ONNX_FILE", "OPSET", "OUTPUTS", "OnnxModel", "export_onnx", "require_onnx"]
