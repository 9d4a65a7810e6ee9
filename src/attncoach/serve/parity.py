"""Parity of an exported model (int8, ONNX) with the float32 torch model of the same sub-net, on a split.

For every example of the split (a run's test split) both models give their raw outputs: the
logits of a classifier, the next-item scores of a recommender. Parity reports

- ``max_abs_diff``: the largest absolute difference of these outputs (over the finite ones:
  a recommender's padding column is ``-inf`` in both);
- ``label_agreement`` (classification): the share of examples with the same predicted label;
  ``top10_overlap`` (next_item): the mean share of the top 10 items (the history left out,
  as ``recommend`` does) the two models have in common;
- the task's primary metric of each model (macro-F1, NDCG@10), computed the same way for both.

A translation model is compared on its teacher-forced logits of every reference token
(``max_abs_diff``), on its greedy translations (``translation_agreement``: the share of sentences
translated identically) and on their BLEU.

Example:
    >>> reference.model.set_subnet(subnet)                                   # doctest: +SKIP
    >>> report = parity(reference, [load_model(out), load_model(out, runtime="onnx")], split)  # doctest: +SKIP
    >>> print("\\n".join(parity_lines(report)))                              # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from attncoach.models.saved import predict_logits
from attncoach.models.seq2seq import translate_ids
from attncoach.tasks import TASKS
from attncoach.tasks.metrics import classification_metrics
from attncoach.tasks.next_item import K
from attncoach.tasks.ranking import ranking_metrics, ranks_full
from attncoach.tasks.translation_metrics import corpus_scores

_BATCH = 256


def split_outputs(predictor: Any, split: Any) -> torch.Tensor:
    """The raw outputs of a loaded model on every example of ``split``, in order.

    Returns:
        ``(N, num_labels)`` logits for a classifier, ``(N, num_items + 1)`` next-item scores for
        a recommender (column 0 ``-inf``), float32 on the CPU.
    """
    if predictor.task == "text_classification":
        return predict_logits(predictor.model, split.ids, _BATCH, predictor.device)
    out = []
    was_training = predictor.model.training
    predictor.model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(split), _BATCH):
                batch = split.batch(list(range(start, min(start + _BATCH, len(split)))))
                ids = batch["input_ids"].to(predictor.device)
                if predictor.task == "next_item":
                    out.append(predictor.model.next_item_scores(ids, ids != 0).float().cpu())
                else:  # a classifier of other inputs (images): the model's logits of the batch's inputs
                    out.append(predictor.model(ids, batch["attention_mask"].to(predictor.device)).float().cpu())
    finally:
        predictor.model.train(was_training)
    return torch.cat(out)


def _quality(task: str, outputs: torch.Tensor, split: Any, labels: Sequence[str] | None) -> float:
    """The task's primary metric of ``outputs`` on ``split``."""
    if TASKS[task].class_probabilities:
        metrics = classification_metrics(list(split.labels), outputs.argmax(-1).tolist(), list(labels or []))
        return float(metrics[TASKS[task].primary])
    ranks = ranks_full(outputs, split.targets, split.histories)
    return float(ranking_metrics(ranks, K)[f"ndcg@{K}"])


def _top_items(scores: torch.Tensor, histories: Sequence[np.ndarray]) -> torch.Tensor:
    """The top K item indices of each row, the row's history left out (as recommendations are)."""
    scores = scores.clone()
    for row, history in enumerate(histories):
        scores[row, torch.as_tensor(np.asarray(history, dtype=np.int64))] = float("-inf")
    return scores.topk(min(K, scores.shape[1] - 1), dim=1).indices


def _max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    finite = torch.isfinite(a) & torch.isfinite(b)
    if not bool(finite.any()):
        return 0.0
    return float((a[finite] - b[finite]).abs().max())


def _agreement(task: str, reference: torch.Tensor, outputs: torch.Tensor, split: Any) -> dict[str, float]:
    if TASKS[task].class_probabilities:
        same = reference.argmax(-1) == outputs.argmax(-1)
        return {"label_agreement": float(same.float().mean())}
    ours, theirs = _top_items(reference, split.histories), _top_items(outputs, split.histories)
    shared = [len(set(a) & set(b)) / len(a) for a, b in zip(ours.tolist(), theirs.tolist())]
    return {f"top{K}_overlap": float(np.mean(shared))}


def parity(reference: Any, exported: Sequence[Any], split: Any, split_name: str = "test") -> dict[str, Any]:
    """Compare each of ``exported`` (loaded model directories) with ``reference`` on ``split``.

    Args:
        reference: the float32 torch model, switched to the exported sub-net (a loaded predictor).
        exported: the exported model loaded with each runtime to check (``load_model(out, runtime=...)``).
        split: the split to compare on (``ids``; ``labels`` for a classifier, ``histories`` and
            ``targets`` for a recommender).
        split_name: how the report names the split.

    Returns:
        ``{"split", "examples", "metric", "compared", "reference": {...}, "exported": [{...}, ...]}``:
        each entry names its ``runtime`` and ``quantization`` and holds ``max_abs_diff``, the
        agreement and the primary metric (see the module doc).
    """
    task = reference.task
    if task == "translation":
        return _translation_parity(reference, exported, split, split_name)
    metric = TASKS[task].primary
    labels = getattr(reference, "labels", None)
    expected = split_outputs(reference, split)
    report: dict[str, Any] = {
        "split": split_name,
        "examples": len(split),
        "metric": metric,
        "compared": "logits" if TASKS[task].class_probabilities else "scores",
        "reference": {"runtime": "torch", "quantization": None, metric: _quality(task, expected, split, labels)},
        "exported": [],
    }
    for predictor in exported:
        outputs = split_outputs(predictor, split)
        report["exported"].append(
            {
                "runtime": predictor.runtime,
                "quantization": predictor.quantization,
                "max_abs_diff": _max_abs_diff(expected, outputs),
                **_agreement(task, expected, outputs, split),
                metric: _quality(task, outputs, split, labels),
            }
        )
    return report


def _translation_parity(reference: Any, exported: Sequence[Any], split: Any, split_name: str) -> dict[str, Any]:
    """:func:`parity` of a translation model (see the module doc)."""
    references = [p.target for p in split.pairs]
    expected = _teacher_forced_logits(reference, split)
    ours = _greedy_translations(reference, split)
    report: dict[str, Any] = {
        "split": split_name,
        "examples": len(split),
        "metric": "bleu",
        "compared": "logits",
        "reference": {"runtime": "torch", "quantization": None, "bleu": corpus_scores(ours, references)["bleu"]},
        "exported": [],
    }
    for predictor in exported:
        theirs = _greedy_translations(predictor, split)
        report["exported"].append(
            {
                "runtime": predictor.runtime,
                "quantization": predictor.quantization,
                "max_abs_diff": _max_abs_diff(expected, _teacher_forced_logits(predictor, split)),
                "translation_agreement": float(np.mean([a == b for a, b in zip(ours, theirs)])),
                "bleu": corpus_scores(theirs, references)["bleu"],
            }
        )
    return report


def _teacher_forced_logits(predictor: Any, split: Any) -> torch.Tensor:
    """The logits of every real target position of ``split``, in order, ``(tokens, V)`` float32 on the CPU."""
    out = []
    model = predictor.model
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(split), _BATCH):
                batch = {
                    k: v.to(predictor.device)
                    for k, v in split.batch(list(range(start, min(start + _BATCH, len(split))))).items()
                }
                mask = batch["target_in"] != 0
                logits = model(batch["input_ids"], batch["attention_mask"], batch["target_in"], mask)
                out.append(logits[mask].float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


def _greedy_translations(predictor: Any, split: Any) -> list[str]:
    return translate_ids(predictor.model, split.source_ids, predictor.target_tokenizer, batch_size=64)


def parity_lines(report: dict[str, Any]) -> list[str]:
    """The report as lines for people, e.g. ``int8 torch: max |Δ logits| 0.0123, labels agree 99.2 %, ...``."""
    metric = report["metric"]
    shown = "macro-F1" if metric == "macro_f1" else metric
    reference = report["reference"][metric]
    lines = [f"parity on the {report['split']} split ({report['examples']} examples) against the float32 torch model:"]
    for entry in report["exported"]:
        kind = f"{entry['quantization'] or 'float32'} {entry['runtime']}"
        if "label_agreement" in entry:
            agreement = f"labels agree {100 * entry['label_agreement']:.1f} %"
        elif "translation_agreement" in entry:
            agreement = f"greedy translations identical {100 * entry['translation_agreement']:.1f} %"
        else:
            agreement = f"top-{K} items overlap {100 * entry[f'top{K}_overlap']:.1f} %"
        lines.append(
            f"  {kind}: max |Δ {report['compared']}| {entry['max_abs_diff']:.2g}, {agreement}, "
            f"{shown} {entry[metric]:.4f} (float32 {reference:.4f}, Δ {entry[metric] - reference:+.4f})"
        )
    return lines
