"""attncoach: train attention models whose structure and hyperparameters adapt while they train.

The public Python API, the same for every task:

- ``attncoach.train(config_or_path, **overrides) -> Run`` (``run.metrics``, ``run.dir``), see
  :mod:`attncoach.train.run`;
- ``attncoach.load(model_or_run_dir) -> Predictor`` (``predict`` for text classification,
  ``recommend`` for next-item recommendation), see :func:`load`.

Example:
    >>> import attncoach
    >>> run = attncoach.train(data={"path": "tickets.csv"}, output_dir="runs/tickets")  # doctest: +SKIP
    >>> attncoach.load(run.dir).predict(["my card was charged twice"])                  # doctest: +SKIP
    [{'label': 'transaction_charged_twice', 'probabilities': {...}}]
"""

import os
from typing import Any

__version__ = "0.1.0"


def load(model_or_run_dir: str | os.PathLike, device: str = "cpu", runtime: str = "torch") -> Any:
    """A trained model, ready to predict, from its run directory (as the CLI takes) or its model directory.

    ``runtime="onnx"`` runs the directory's ``model.onnx`` (``attncoach export ... --onnx``) in
    ONNX Runtime instead of the torch model (``pip install 'attncoach[onnx]'``). An int8 model
    directory (``attncoach export ... --quantize int8``) loads like any other.

    Returns:
        The task's predictor: for ``text_classification`` an
        :class:`attncoach.models.saved.SavedClassifier` (``predict(texts) -> [{"label",
        "probabilities"}]``, one result per text; a single string is one text, and its result
        is a list of one; ``predict_proba``; the probabilities are calibrated by the temperature
        of the model's ``calibration.json``, see ``temperature``); for ``next_item`` an
        :class:`attncoach.models.saved.SavedRecommender` (``recommend(user=... | history=[...],
        k=10) -> [{"item", "score"}]``, ``recommend_many``); for ``image_classification`` an
        :class:`attncoach.models.saved_image.SavedImageClassifier` (``predict(image files or uint8
        arrays (C, H, W)) -> [{"label", "probability", "probabilities"}]``).

    Raises:
        AttncoachError: the path is not a path, holds no complete model, or a file of it is
            damaged; an unknown device or runtime; ``onnx`` without a ``model.onnx``.
    """
    from attncoach.errors import AttncoachError
    from attncoach.models.saved import load_model
    from attncoach.rundir import resolve_model_dir

    if not isinstance(model_or_run_dir, (str, os.PathLike)):
        shown = type(model_or_run_dir).__name__
        raise AttncoachError(f"load needs the path of a run or model directory, not {shown} {model_or_run_dir!r:.40}")
    return load_model(resolve_model_dir(model_or_run_dir), device=device, runtime=runtime)


def __getattr__(name: str) -> Any:
    if name == "train":  # the callable training package (attncoach.train(...) -> Run)
        import importlib

        return importlib.import_module("attncoach.train")
    raise AttributeError(f"module 'attncoach' has no attribute {name!r}")
