"""Task ``next_item``: sequential recommendation, SASRec (Kang & McAuley, 2018), NDCG@10 as the primary metric.

Every user's interactions, ordered by time, are one item history. The split is leave-one-out:
the last item of every user is the test target, the second-to-last the val target, and the
items before them train. A training example is a window of a user's training history: the
model reads items ``0..n-2`` causally and predicts items ``1..n-1`` (one softmax over every
item at every position, the cross-entropy form of SASRec's loss, which Klenitskiy & Vasilev
2023 found better than its original sampled binary loss). A history longer than
``data.max_length + 1`` is cut into windows whose ends lie ``data.window_stride`` items apart
(default ``max_length``: consecutive windows that overlap by one item, so that every training
item is a target exactly once; a smaller stride repeats targets after longer contexts).

Evaluation ranks the target among **all** items (the honest protocol), leaving out the items
the user has already interacted with, and reports HR@10, NDCG@10 and MRR; the same figures
against 100 sampled negatives (the protocol of many papers) carry the suffix ``_sampled``.

Example:
    >>> task = TASKS["next_item"]()                                 # doctest: +SKIP
    >>> data = task.build(cfg)                                      # doctest: +SKIP
    >>> out = task.step(model, data.splits["train"].batch([0, 1]))  # doctest: +SKIP
    >>> task.evaluate(model, data.splits["val"], data)["ndcg@10"]   # doctest: +SKIP
    0.1234
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from attncoach.atomicfile import atomic_write_json
from attncoach.data.interactions import (
    Sequences,
    build_sequences,
    leave_one_out,
    load_builtin_interactions,
    read_interactions,
    sampled_negatives,
)
from attncoach.errors import AttncoachError
from attncoach.models.next_item import PAD_ITEM, NextItemModel
from attncoach.models.saved import autocast_for
from attncoach.tasks.base import StepOut, Task, TaskData, encoder_config, register_task
from attncoach.tasks.ranking import ranking_metrics, ranks_full, ranks_sampled

log = logging.getLogger("attncoach")

DEFAULT_CORPUS = "movielens-100k"
DEFAULT_MAX_LENGTH = 50  # SASRec's and RecBole's history length for MovieLens
NEGATIVES_SEED = 0  # the sampled protocol's negatives are the same for every run of a dataset
K = 10


def _pad(rows: Sequence[np.ndarray]) -> tuple[Tensor, Tensor]:
    """Right-padded ``(B, T)`` item ids (0 = padding) and their mask."""
    width = max((len(r) for r in rows), default=0)
    ids = torch.zeros(len(rows), max(width, 1), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    return ids, ids != PAD_ITEM


@dataclass
class HistoryWindows:
    """The training split: windows of the users' training histories (index i is one example).

    Attributes:
        windows: item indices per window (at least 2: one input and one target).
        users: the user id of each window (how the learning record names it, as ``texts``).
        lines: 0 for every window (a window is not one line of the source).
        labels: the last item of each window (what the learning record calls its gold answer).
    """

    windows: list[np.ndarray]
    users: list[str]
    lines: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.lines:
            self.lines = [0] * len(self.windows)
        self.labels = np.array([int(w[-1]) for w in self.windows], dtype=np.int64)  # the record's gold answer

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def ids(self) -> list[np.ndarray]:
        """The input items of each window (all but the last)."""
        return [w[:-1] for w in self.windows]

    @property
    def texts(self) -> list[str]:
        return [f"user {u}" for u in self.users]

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(w) - 1 for w in self.windows), dtype=np.int64, count=len(self.windows))

    def subset(self, indices: Sequence[int] | np.ndarray) -> HistoryWindows:
        keep = np.asarray(indices, dtype=np.int64)
        return HistoryWindows([self.windows[i] for i in keep], [self.users[i] for i in keep])

    def batch(self, indices: Sequence[int]) -> dict[str, Tensor]:
        """``input_ids``, ``attention_mask`` and ``targets`` (the next item at every position, 0 = none)."""
        chosen = [self.windows[i] for i in indices]
        inputs, mask = _pad([w[:-1] for w in chosen])
        targets, _ = _pad([w[1:] for w in chosen])
        return {"input_ids": inputs, "attention_mask": mask, "targets": targets}


@dataclass
class NextItemCases:
    """A val or test split: per user, the history so far, the next item, and the items to leave out.

    Attributes:
        histories: the items before the target (all of them: they are left out of the ranking).
        targets: the item to predict, shape (U,).
        negatives: (U, n) sampled negatives for the sampled protocol, or None.
        max_length: the model reads the last ``max_length`` items of each history.
        users: the user id of each case.
    """

    histories: list[np.ndarray]
    targets: np.ndarray
    negatives: np.ndarray | None
    max_length: int
    users: list[str]

    def __len__(self) -> int:
        return len(self.histories)

    @property
    def ids(self) -> list[np.ndarray]:
        return [h[-self.max_length :] for h in self.histories]

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((min(len(h), self.max_length) for h in self.histories), dtype=np.int64, count=len(self))

    def batch(self, indices: Sequence[int]) -> dict[str, Tensor]:
        inputs, mask = _pad([self.histories[i][-self.max_length :] for i in indices])
        return {"input_ids": inputs, "attention_mask": mask, "target": torch.as_tensor(self.targets[list(indices)])}


@register_task("next_item")
class NextItemTask(Task):
    """Predict each user's next item from their history; see the module docstring."""

    primary = "ndcg@10"
    tracked = ("ndcg@10", "hr@10")
    corpus = DEFAULT_CORPUS
    embedded_inputs = True  # token (item) ids through an embedding table: robust.method perturbs it
    keys = frozenset(
        {
            "data.user_column",
            "data.item_column",
            "data.time_column",
            "data.min_interactions",
            "data.negatives",
            "data.window_stride",
        }
    )

    def build(self, cfg: Any, backbone: Any = None, model_dir: Path | None = None) -> TaskData:
        d = cfg.data
        if backbone is not None:
            raise AttncoachError("task next_item trains from scratch: model.backbone must be scratch")
        inter = _read(d)
        seqs = build_sequences(inter, d.min_interactions)
        if model_dir is not None and (Path(model_dir) / "items.json").is_file():
            _check_same_items(seqs, Path(model_dir) / "items.json")
        split = leave_one_out(seqs)
        max_length = d.max_length or DEFAULT_MAX_LENGTH
        windows, users = [], []
        for user, history in zip(seqs.user_ids, split["train"]):
            for window in history_windows(history, max_length, d.window_stride):
                windows.append(window)
                users.append(user)
        short = len(seqs.user_ids) - len(set(users))
        if not windows:
            raise AttncoachError(
                f"no user has the 4 interactions a training example needs (2 to train on, then val and test) "
                f"in {_source(d)}"
            )
        train = HistoryWindows(windows, users)
        negatives = _negatives(seqs, d.negatives)
        cases = {
            name: NextItemCases(
                [np.asarray(h) for h in split[name].prefix], split[name].target, negatives, max_length, seqs.user_ids
            )
            for name in ("val", "test")
        }
        num_items = len(seqs.item_ids)
        targets = np.concatenate([w[1:] for w in windows])
        stats = {
            "source": _source(d),
            **seqs.stats,
            "training_windows": len(windows),
            "training_targets": int(len(targets)),
            "users_without_training_pairs": short,
            "max_length": max_length,
            "max_length_chosen_by": "data.max_length" if d.max_length else f"the next_item default {max_length}",
            "negatives": 0 if negatives is None else int(negatives.shape[1]),
            "splits": {"train": len(windows), "val": len(cases["val"]), "test": len(cases["test"])},
        }
        log.info(
            "data: %d interactions, %d users, %d items; %d training windows (%d targets), val and test %d users "
            "(leave-one-out), max_length %d",
            seqs.stats["interactions"],
            len(seqs.user_ids),
            num_items,
            len(windows),
            len(targets),
            len(seqs.user_ids),
            max_length,
        )
        return TaskData(
            splits={"train": train, **cases},
            strata=np.zeros(len(windows), dtype=np.int64),  # one group: no class to keep in proportion
            chance_loss=_chance_loss(targets, num_items, self.label_smoothing),
            label_names=["(padding)", *seqs.item_ids],
            max_length=max_length,
            new_model=partial(_new_model, num_items, max_length),
            save=partial(_save_files, seqs),
            prepared=seqs,
            stats=stats,
        )

    def step(self, model: Any, batch: dict[str, Tensor]) -> StepOut:
        mask = batch["attention_mask"].to(torch.bool)
        hidden = model(batch["input_ids"], mask)  # (B, T, D)
        logits = model.item_logits(hidden[mask]).float()  # (N, V): every real position, every item
        gold = batch["targets"][mask] - 1  # (N,), 0-based over the items
        loss = F.cross_entropy(logits, gold, label_smoothing=self.label_smoothing)
        with torch.no_grad():
            nll = F.cross_entropy(logits, gold, reduction="none")
            rows = mask.nonzero()[:, 0]  # the example of every position
            counts = mask.sum(dim=1)
            losses = torch.zeros(mask.shape[0], device=nll.device).index_add_(0, rows, nll) / counts.clamp_min(1)
            last = counts.cumsum(0) - 1  # each example's last position among the N
            predicted = logits[last].argmax(dim=-1) + 1
        return StepOut(
            loss=loss,
            losses=losses,
            correct=predicted == gold[last] + 1,
            outputs=logits,
            hidden=hidden,
            mask=mask,
            predicted=predicted,
        )

    def evaluate(
        self, model: Any, split: Any, data: TaskData, batch_size: int = 256, bf16: bool = False
    ) -> dict[str, Any]:
        return evaluate_cases(model, split, batch_size, bf16)


def history_windows(history: np.ndarray, max_length: int, stride: int | None = None) -> list[np.ndarray]:
    """Windows of at most ``max_length + 1`` items whose ends lie ``stride`` items apart, from the end back.

    With ``stride = max_length`` (the default) windows overlap by one item and every item but the
    first is the target of exactly one window position; a smaller stride lets a target appear in
    several windows, each time after a longer stretch of the history before it.

    Example:
        >>> [w.tolist() for w in history_windows(np.arange(1, 8), 3)]
        [[1, 2, 3, 4], [4, 5, 6, 7]]
        >>> [w.tolist() for w in history_windows(np.arange(1, 8), 3, stride=2)]
        [[1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7]]
    """
    stride = stride or max_length
    out = []
    end = len(history)
    while end >= 2:
        start = max(0, end - max_length - 1)
        out.append(np.asarray(history[start:end], dtype=np.int64))
        if start == 0:
            break
        end -= stride
    return out[::-1]


@torch.inference_mode()
def evaluate_cases(model: Any, cases: NextItemCases, batch_size: int = 256, bf16: bool = False) -> dict[str, Any]:
    """Loss and ranking metrics of ``model`` on val or test cases (see the module docstring)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    full, sampled, losses = [], [], []
    try:
        for start in range(0, len(cases), batch_size):
            index = list(range(start, min(start + batch_size, len(cases))))
            batch = cases.batch(index)
            ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
            with autocast_for(device, bf16):
                hidden = model(ids, mask)
            last = hidden[torch.arange(len(index), device=device), mask.sum(dim=1) - 1]
            scores = model.scores(last).float()  # (B, V + 1), column 0 = padding
            target = batch["target"].to(device)
            losses.append(F.cross_entropy(scores[:, 1:], target - 1, reduction="sum").item())
            full.append(ranks_full(scores, target, [cases.histories[i] for i in index]).cpu())
            if cases.negatives is not None:
                sampled.append(ranks_sampled(scores, target, cases.negatives[index]).cpu())
    finally:
        model.train(was_training)
    if not full:
        raise AttncoachError("no evaluation cases: the split is empty")
    metrics: dict[str, Any] = {"loss": sum(losses) / len(cases), **ranking_metrics(torch.cat(full), K)}
    if sampled:
        for key, value in ranking_metrics(torch.cat(sampled), K).items():
            if key != "n":
                metrics[f"{key}_sampled"] = value
    return metrics


def _read(d: Any) -> Any:
    if d.path is not None:
        return read_interactions(Path(d.path), d.format, d.encoding, d.user_column, d.item_column, d.time_column, None)
    return load_builtin_interactions(d.builtin or DEFAULT_CORPUS)


def _source(d: Any) -> str:
    return str(d.path) if d.path is not None else (d.builtin or DEFAULT_CORPUS)


def _negatives(seqs: Sequences, n: int) -> np.ndarray | None:
    """The sampled protocol's negatives, or None (with a note) when n is 0 or the catalogue is too small."""
    if n == 0:
        return None
    num_items = len(seqs.item_ids)
    most_seen = max(len(np.unique(h)) for h in seqs.histories)
    if num_items - most_seen < n:
        log.info(
            "sampled metrics skipped: %d negatives need %d unseen items per user, and one user has seen %d of %d",
            n,
            n,
            most_seen,
            num_items,
        )
        return None
    return sampled_negatives(num_items, seqs.histories, n, NEGATIVES_SEED)


def _chance_loss(targets: np.ndarray, num_items: int, label_smoothing: float) -> float:
    """Cross-entropy of always predicting the training targets' item frequencies."""
    counts = np.bincount(targets - 1, minlength=num_items).astype(np.float64)
    p = (1 - label_smoothing) * counts / counts.sum() + label_smoothing / num_items
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _new_model(num_items: int, max_length: int, m: Any, backbone: Any = None) -> NextItemModel:
    enc = encoder_config(m, vocab_size=num_items + 1, max_position=max_length, type_vocab_size=0, pad_id=PAD_ITEM)
    return NextItemModel(enc, num_items)


def _save_files(seqs: Sequences, model_dir: Path) -> None:
    """``items.json`` (the item ids, index i + 1 = items[i]) and ``users.json`` (every user's whole history)."""
    atomic_write_json(Path(model_dir) / "items.json", seqs.item_ids)
    atomic_write_json(
        Path(model_dir) / "users.json",
        {"users": seqs.user_ids, "histories": [h.tolist() for h in seqs.histories]},
    )


def _check_same_items(seqs: Sequences, path: Path) -> None:
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise AttncoachError(f"{path} is not valid JSON") from None
    if saved != seqs.item_ids:
        raise AttncoachError(
            f"the data's items are not the ones the model was trained on ({path}: {len(saved)} items, "
            f"the data: {len(seqs.item_ids)}): the data source changed"
        )


__all__ = ["HistoryWindows", "NextItemCases", "NextItemTask", "evaluate_cases", "history_windows"]
