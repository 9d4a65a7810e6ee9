"""``attncoach active``: active learning simulated on a labelled corpus, round by round.

The config's corpus is split as any run splits it (same seed, same val and test). Its training
split is the *pool*: its labels are hidden until an example is chosen. Round 0 trains on
``start`` examples drawn at random from the pool; after each round the strategy picks ``step``
more from the rest of the pool with the round's model, their gold labels are revealed, and the
next round trains on the larger set, starting from the previous round's model (a warm start:
``model.backbone`` = that model, whose tokenizer, encoder and head it keeps). Each round is an ordinary run in
``OUT/round-RR`` (its data in ``OUT/round-RR.jsonl``), so ``eval``, ``report`` and ``examples`` work on it.

``OUT/active.json`` is the learning curve: per round the number of labels, the val and test
metrics, the examples trained on and the examples picked next. It is written after every round,
so running the same command again resumes a killed loop: finished rounds are kept, an unfinished
round resumes from its checkpoint, and the picks are recomputed identically from the saved models.

A scratch model learns its vocabulary from round 0's texts; a pretrained backbone
(``model.backbone: minilm``) brings its own, which suits small labelled sets far better.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from attncoach.active.select import check_request, rank_texts
from attncoach.atomicfile import atomic_write_json, atomic_write_text
from attncoach.config import RunConfig, to_dict
from attncoach.errors import AttncoachError
from attncoach.rundir import RunDir
from attncoach.train.settings import load_run_config

log = logging.getLogger("attncoach")

STATE_FILE = "active.json"


@dataclass
class ActiveRequest:
    """What ``attncoach active`` was asked (see ``attncoach active --help``)."""

    config: str | None
    out: Path
    start: int = 200
    step: int = 200
    rounds: int = 8
    strategy: str = "entropy"
    overrides: list[str] = field(default_factory=list)
    quiet: bool = False


def active(request: ActiveRequest, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) the loop; returns ``active.json``'s content.

    Raises:
        AttncoachError: bad settings, a task without class labels, a pool too small for the rounds, an
            ``--out`` that holds another loop or something else.
    """
    _check_numbers(request)
    base = _base_config(request)
    pool, val, test = _splits(base)
    needed = request.start + request.step * (request.rounds - 1)
    if needed > len(pool):
        raise AttncoachError(
            f"{request.rounds} rounds from {request.start} labels in steps of {request.step} need {needed} "
            f"examples; the pool (the training split) holds {len(pool)}"
        )
    state = _claim_out(request, base, len(pool))
    first = np.random.default_rng(base.train.seed).choice(len(pool), request.start, replace=False)
    labelled = sorted(int(i) for i in first)
    for finished in state["rounds"]:
        labelled = sorted(labelled + finished["picked"])
    done = len(state["rounds"])
    if done:
        echo(f"{request.out}: {done} of {request.rounds} rounds done; resuming")
    for number in range(done, request.rounds):
        row = _round(request, base, number, labelled, pool, val, test, echo)
        state["rounds"].append(row)
        state["curve"] = [[r["labels"], r[f"test_{r['primary']}"]] for r in state["rounds"]]
        atomic_write_json(request.out / STATE_FILE, state)
        labelled = sorted(labelled + row["picked"])
    return state


def _check_numbers(request: ActiveRequest) -> None:
    check_request(request.strategy, 1)
    for flag, value in (("--start", request.start), ("--step", request.step), ("--rounds", request.rounds)):
        if value < 1:
            raise AttncoachError(f"{flag} must be at least 1, got {value}")
    for item in request.overrides:
        if item.split("=", 1)[0].strip() == "output_dir":
            raise AttncoachError(f"attncoach active sets {item.split('=', 1)[0].strip()} for each round; drop it")


def _base_config(request: ActiveRequest) -> RunConfig:
    base = load_run_config(request.config, request.overrides)
    if base.task != "text_classification":
        raise AttncoachError(f"attncoach active simulates labelling texts; task {base.task} is not text_classification")
    return base


def _splits(cfg: RunConfig) -> tuple[list[Any], list[Any], list[Any]]:
    """The corpus's train (the pool), val and test examples, split exactly as a run of ``cfg`` splits them."""
    from attncoach.data.prepare import check_labels, label_names
    from attncoach.data.sources import drop_unusable, read_rows, source_name
    from attncoach.data.splits import dedupe, split_examples

    d = cfg.data
    usable, _ = drop_unusable(read_rows(d), source_name(d))
    examples, _ = dedupe(usable)
    check_labels(examples, label_names(examples), source_name(d))
    splits = split_examples(examples, d.val_fraction, d.test_fraction, cfg.train.seed, d.label_column)
    return splits["train"], splits["val"], splits["test"]


def _settings(request: ActiveRequest, base: RunConfig, pool: int) -> dict[str, Any]:
    config = to_dict(base)
    config.pop("output_dir", None)
    return {
        "config": config,
        "start": request.start,
        "step": request.step,
        "rounds": request.rounds,
        "strategy": request.strategy,
        "pool": pool,
    }


def _claim_out(request: ActiveRequest, base: RunConfig, pool: int) -> dict[str, Any]:
    """``active.json`` of a loop to resume (same settings), or a fresh one in a new ``--out``."""
    out, settings = request.out, _settings(request, base, pool)
    saved = out / STATE_FILE
    if saved.is_file():
        try:
            state = json.loads(saved.read_text(encoding="utf-8"))
            same = state["settings"] == settings
        except (OSError, ValueError, KeyError, TypeError):
            raise AttncoachError(f"{saved} is damaged: it should hold the loop's settings and rounds") from None
        if not same:
            raise AttncoachError(
                f"{out} holds an active-learning loop with other settings; run it with the same ones, or give a new --out"
            )
        return state
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AttncoachError(f"--out {out} exists and is not an active-learning loop; choose a new directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AttncoachError(f"cannot make --out {out}: {exc.strerror or exc}") from None
    state = {"settings": settings, "rounds": [], "curve": []}
    atomic_write_json(saved, state)
    return state


def _round(
    request: ActiveRequest,
    base: RunConfig,
    number: int,
    labelled: list[int],
    pool: list[Any],
    val: list[Any],
    test: list[Any],
    echo: Callable[[str], None],
) -> dict[str, Any]:
    """Train round ``number`` on the ``labelled`` pool positions; pick the next round's examples."""
    from attncoach.models.saved import SavedClassifier
    from attncoach.train.recipe import Recipe

    name = f"round-{number:02d}"
    run = RunDir(request.out / name)
    data = request.out / f"{name}.jsonl"
    started = time.perf_counter()
    if run.metrics.is_file():  # trained before the loop was stopped: only the picks are left
        metrics = json.loads(run.metrics.read_text(encoding="utf-8"))
    else:
        resume = run.is_run()
        if not resume:
            _write_round_data(data, [pool[i] for i in labelled], val, test)
        cfg = load_run_config(run.config) if resume else _round_config(request, base, number, data, run)
        if not resume:
            run.check_new()
        echo(f"round {number}: training on {len(labelled)} labels{' (resumed)' if resume else ''} -> {run.path}")
        metrics = Recipe(cfg, run, resume=resume, quiet=request.quiet).run()
    primary = metrics["primary"]
    row: dict[str, Any] = {
        "round": number,
        "labels": len(labelled),
        "primary": primary,
        **{f"val_{k}": metrics["val"][k] for k in ("macro_f1", "accuracy")},
        **{f"test_{k}": metrics["test"][k] for k in ("macro_f1", "accuracy")},
        "examples_seen": metrics["examples_seen"],
        "steps": metrics["steps"],
        "run_dir": str(run.path),
        "picked": [],
    }
    if number < request.rounds - 1:
        rest = sorted(set(range(len(pool))) - set(labelled))
        clf = SavedClassifier.load(run.model)
        labelled_ids = None
        if request.strategy == "coreset":
            from attncoach.data.tokenizer import encode_texts

            labelled_ids = encode_texts(clf.tokenizer, [pool[i].text for i in labelled], clf.max_length)
        seed = base.train.seed + 1000 * (number + 1)  # a different random draw each round
        chosen = rank_texts(clf, [pool[i].text for i in rest], request.step, request.strategy, seed, labelled_ids)
        row["picked"] = sorted(rest[r["pool_index"]] for r in chosen)
    row["seconds"] = round(time.perf_counter() - started, 1)
    echo(
        f"round {number}: {len(labelled)} labels, test {primary} {metrics['test'][primary]:.4f}, "
        f"accuracy {metrics['test']['accuracy']:.4f}"
        + (f"; {len(row['picked'])} picked by {request.strategy}" if row["picked"] else "")
    )
    return row


def _write_round_data(path: Path, train: list[Any], val: list[Any], test: list[Any]) -> None:
    lines = [
        json.dumps({"text": e.text, "label": e.label, "split": split}, ensure_ascii=False)
        for split, examples in (("train", train), ("val", val), ("test", test))
        for e in examples
    ]
    atomic_write_text(path, "\n".join(lines) + "\n")


def _round_config(request: ActiveRequest, base: RunConfig, number: int, data: Path, run: RunDir) -> RunConfig:
    overrides = [
        f"data.path={data}",
        "data.builtin=null",
        "data.format=jsonl",
        "data.text_column=text",
        "data.label_column=label",
        "data.split_column=split",
        "data.group_column=null",
        f"output_dir={run.path}",
    ]
    if number > 0:  # warm start: the previous round's model, its tokenizer, encoder and head
        overrides.append(f"model.backbone={request.out / f'round-{number - 1:02d}' / 'model'}")
    return load_run_config(request.config, [*request.overrides, *overrides])
