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

from typing import Any

__version__ = "0.1.0"


def load(model_or_run_dir: Any, device: str = "cpu") -> Any:
    """A trained model, ready to predict, from its model directory or its run directory.

    Returns:
        The task's predictor: for ``text_classification`` an
        :class:`attncoach.models.saved.SavedClassifier` (``predict(texts) -> [{"label",
        "probabilities"}]``, ``predict_proba``); for ``next_item`` an
        :class:`attncoach.models.saved.SavedRecommender` (``recommend(user=... | history=[...],
        k=10) -> [{"item", "score"}]``, ``recommend_many``).

    Raises:
        AttncoachError: the path holds no complete model, or a file of it is damaged.
    """
    from attncoach.models.saved import load_model
    from attncoach.rundir import resolve_model_dir

    return load_model(resolve_model_dir(model_or_run_dir), device=device)


def __getattr__(name: str) -> Any:
    if name == "train":  # the callable training package (attncoach.train(...) -> Run)
        import importlib

        return importlib.import_module("attncoach.train")
    raise AttributeError(f"module 'attncoach' has no attribute {name!r}")
