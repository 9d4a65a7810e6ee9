"""``attncoach select``: the pool examples a trained classifier would have labelled next.

The model scores every text of the pool (class probabilities, calibrated when the model holds a
temperature, and the pooled representation its output layer reads); a strategy of
:mod:`attncoach.active.strategies` picks ``budget`` of them. ``coreset`` starts from the run's own
training examples as centres, so it needs the run directory (its data is rebuilt from the config).

Example:
    >>> rows = select_from_pool(SelectRequest(run="runs/intents", pool=Path("unlabelled.csv"), budget=50))  # doctest: +SKIP
    >>> rows[0]["text"], rows[0]["score"]                                                                    # doctest: +SKIP
    ('can I still use my card abroad', 2.71)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attncoach.active.strategies import NEED_EMBEDDINGS, STRATEGIES, select
from attncoach.data.batching import collate, inference_batches
from attncoach.data.stream import TextStream
from attncoach.data.tokenizer import encode_texts
from attncoach.errors import AttncoachError

log = logging.getLogger("attncoach")


@dataclass
class SelectRequest:
    """What ``attncoach select`` was asked (see ``attncoach select --help``)."""

    run: str
    pool: Path
    budget: int
    strategy: str = "entropy"
    text_column: str = "text"
    encoding: str = "utf-8"
    seed: int = 0
    batch_size: int = 256


def check_request(strategy: str, budget: int) -> None:
    """An unknown strategy or a budget below 1: one line."""
    if strategy not in STRATEGIES:
        raise AttncoachError(f"unknown strategy '{strategy}'; choose one of: {', '.join(STRATEGIES)}")
    if budget < 1:
        raise AttncoachError(f"--budget must be at least 1, got {budget}")


def select_from_pool(request: SelectRequest) -> list[dict[str, Any]]:
    """The ``budget`` pool texts to label next, ranked: ``rank``, ``pool_index`` (0-based, among the pool's
    non-blank texts), ``text``, ``score``, ``predicted`` and its ``probability``.

    Raises:
        AttncoachError: a bad strategy or budget, a model that is not a text classifier, an unreadable
            pool or one without the text column, a budget larger than the pool.
    """
    from attncoach.models.saved import PRETRAINED_ENCODER_USE, SavedClassifier, read_model_config
    from attncoach.rundir import resolve_model_dir

    check_request(request.strategy, request.budget)
    model_dir = resolve_model_dir(request.run)
    task = read_model_config(model_dir)["task"]
    if task != "text_classification":
        use = PRETRAINED_ENCODER_USE if task == "masked_lm" else f"{model_dir} holds a {task} model"
        raise AttncoachError(f"select ranks texts for a text classifier; {use}")
    texts = read_pool(request.pool, request.text_column, request.encoding)
    if request.budget > len(texts):
        raise AttncoachError(f"--budget {request.budget} is larger than the pool's {len(texts)} texts")
    clf = SavedClassifier.load(model_dir)
    labelled = None
    if request.strategy == "coreset":
        labelled = training_ids(model_dir)
    return rank_texts(clf, texts, request.budget, request.strategy, request.seed, labelled, request.batch_size)


def rank_texts(
    clf: Any,
    texts: Sequence[str],
    budget: int,
    strategy: str,
    seed: int,
    labelled_ids: Sequence[Sequence[int]] | None = None,
    batch_size: int = 256,
) -> list[dict[str, Any]]:
    """Score ``texts`` with the loaded classifier ``clf`` and pick ``budget`` of them (see :func:`select_from_pool`)."""
    ids = encode_texts(clf.tokenizer, list(texts), clf.max_length)
    need = strategy in NEED_EMBEDDINGS
    logits, embeddings = model_outputs(clf.model, ids, batch_size, clf.device, with_embeddings=need)
    probs = torch.softmax(logits / (clf.temperature or 1.0), dim=-1).numpy()
    if not np.isfinite(probs).all():
        raise AttncoachError("the model's probabilities are not finite (NaN): its weights are damaged")
    labelled = None
    if labelled_ids is not None and len(labelled_ids):
        labelled = model_outputs(clf.model, labelled_ids, batch_size, clf.device, with_embeddings=True)[1]
    chosen = select(probs, budget, strategy, np.random.default_rng(seed), embeddings, labelled)
    rows = []
    for rank, (position, score) in enumerate(zip(chosen.positions.tolist(), chosen.scores.tolist()), 1):
        best = int(probs[position].argmax())
        rows.append(
            {
                "rank": rank,
                "pool_index": position,
                "text": texts[position],
                "score": None if np.isnan(score) else round(score, 6),
                "predicted": clf.labels[best],
                "probability": round(float(probs[position, best]), 6),
            }
        )
    return rows


def model_outputs(
    model: torch.nn.Module, ids: Sequence[Sequence[int]], batch_size: int, device: torch.device, with_embeddings: bool
) -> tuple[torch.Tensor, np.ndarray | None]:
    """Logits (N, classes) and, when asked, the pooled representations (N, dim) the output layer reads,
    in input order; sequences of similar length are batched together."""
    captured: list[torch.Tensor] = []
    hook = None
    if with_embeddings:
        out_layer = getattr(getattr(model, "head", None), "out", None)
        if out_layer is None:
            raise AttncoachError("this model has no classification head whose representations the strategy can read")
        hook = out_layer.register_forward_pre_hook(lambda _module, inputs: captured.append(inputs[0].float().cpu()))
    passes = inference_batches([len(row) for row in ids], batch_size)
    logits: list[torch.Tensor] = []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for chunk in passes:
                batch = collate([ids[i] for i in chunk])
                logits.append(model(batch["input_ids"].to(device), batch["attention_mask"].to(device)).float().cpu())
    finally:
        model.train(was_training)
        if hook is not None:
            hook.remove()
    index = torch.tensor([i for chunk in passes for i in chunk])
    result = torch.empty((len(ids), logits[0].shape[1]))
    result[index] = torch.cat(logits)
    if not with_embeddings:
        return result, None
    pooled = torch.cat(captured)
    embeddings = torch.empty((len(ids), pooled.shape[1]))
    embeddings[index] = pooled
    return result, embeddings.numpy()


def read_pool(path: Path, column: str, encoding: str) -> list[str]:
    """Every non-blank text of the pool file (``.txt``: one per line; CSV, TSV, JSONL: the text column)."""
    texts = list(TextStream(path, encoding, column))
    if not texts:
        raise AttncoachError(f"the pool {path} holds no text")
    return texts


def training_ids(model_dir: Path) -> list[list[int]]:
    """The token ids of the training split of the run that holds ``model_dir`` (coreset's first centres)."""
    from attncoach.data.fingerprint import check_sources
    from attncoach.rundir import RunDir
    from attncoach.tasks import TASKS
    from attncoach.train.settings import load_run_config

    run = RunDir(model_dir.parent)
    if not run.is_run():
        raise AttncoachError(
            f"strategy coreset starts from the run's training examples; {model_dir} is not inside a run directory"
        )
    cfg = load_run_config(run.config)
    task = TASKS[cfg.task]()
    check_sources(run, cfg.data, task.corpus, hint="coreset needs the run's training data as it was")
    return task.build(cfg, model_dir=model_dir).splits["train"].ids
