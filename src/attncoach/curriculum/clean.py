"""``attncoach clean``: a run's data with its most suspect training examples dropped or relabelled.

The suspects are the top of the learning record's suspicion ranking
(:mod:`attncoach.curriculum.mislabel`). The file written holds the run's training examples as it
trained on them (with injected label noise: the noisy labels), less the ``drop`` most suspect or
with the ``relabel`` most suspect given the class the run's best model predicts, followed by the
run's val and test examples unchanged; a ``split`` column says which is which, so that a run on
the file with ``data.split_column: split`` trains on the cleaned examples and is measured on the
same val and test as the original run.

Example:
    >>> run = RunDir("runs/tweets")                                                          # doctest: +SKIP
    >>> result = clean_run(run, load_run_config(run.config), Path("clean.csv"), drop=500)  # doctest: +SKIP
    >>> result.changed                                                                 # doctest: +SKIP
    500
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attncoach.atomicfile import atomic_text_writer
from attncoach.curriculum.mislabel import RecordColumns, suspect_order
from attncoach.curriculum.record import default_score, read_examples_jsonl
from attncoach.errors import AttncoachError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl"}
SPLIT_COLUMN = "split"


@dataclass
class CleanResult:
    """What :func:`clean_run` wrote: the file, its format, the suspicion score, the rows per split, how many
    training examples were dropped or relabelled, and how many of those were injected flips (or None)."""

    out: Path
    format: str
    by: str
    action: str
    changed: int
    rows: dict[str, int]
    flips_among_changed: int | None


def output_format(out: Path, data_cfg: Any) -> str:
    """The format of ``out``: by its suffix (.csv, .tsv, .jsonl), else the run's own data format."""
    suffix = out.suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    if data_cfg.format in ("csv", "tsv", "jsonl"):
        return data_cfg.format
    source = Path(data_cfg.path).suffix.lower() if data_cfg.path else ".csv"
    return FORMATS.get(source, "csv")


def clean_run(
    run: Any, cfg: Any, out: Path, drop: int | None = None, relabel: int | None = None, by: str | None = None
) -> CleanResult:
    """Write ``out`` (see the module docstring) for the run directory ``run`` of configuration ``cfg``;
    exactly one of ``drop`` and ``relabel`` is a count >= 1.

    Raises:
        AttncoachError: a bad count, an existing ``out``, a task whose examples are not labelled texts,
            a run without a learning record.
    """
    action, n = ("drop", drop) if drop is not None else ("relabel", relabel)
    if n is None or n < 1:
        raise AttncoachError(f"--{action} must be at least 1, got {n}")
    out = Path(out)
    if out.exists():
        raise AttncoachError(f"{out} exists: choose another --out (clean never overwrites a file)")
    if cfg.task != "text_classification":
        raise AttncoachError(f"clean writes labelled texts; run {run.path} trains {cfg.task}, whose examples are not")
    rows = read_examples_jsonl(run.examples)
    if n > len(rows):
        raise AttncoachError(f"--{action} {n} is more than the run's {len(rows):,} training examples")
    by = by or default_score(rows)
    chosen = [int(i) for i in suspect_order(RecordColumns.of_rows(rows), by)[:n]]
    labels = [r["label"] for r in rows]
    if action == "relabel":
        for i, label in zip(chosen, _predicted(run, [rows[i]["text"] for i in chosen])):
            labels[i] = label
    dropped = set(chosen) if action == "drop" else set()
    train = [(r["text"], labels[i]) for i, r in enumerate(rows) if i not in dropped]
    held_out = _held_out(run, cfg)
    fmt = output_format(out, cfg.data)
    _write(out, fmt, cfg.data.text_column, cfg.data.label_column, {"train": train, **held_out})
    return CleanResult(
        out,
        fmt,
        by,
        action,
        len(chosen),
        {"train": len(train), **{name: len(split) for name, split in held_out.items()}},
        _flips_among(run, [rows[i]["index"] for i in chosen]),
    )


def _predicted(run: Any, texts: list[str]) -> list[str]:
    """The class the run's best model gives each text."""
    from attncoach.models.saved import load_model

    model = load_model(run.model)
    probs = model.predict_proba(texts)
    return [model.labels[int(k)] for k in probs.argmax(axis=1)]


def _held_out(run: Any, cfg: Any) -> dict[str, list[tuple[str, str]]]:
    """The run's val and test examples, rebuilt from its data as the run split it."""
    from attncoach.data.fingerprint import check_sources
    from attncoach.tasks import TASKS

    task = TASKS[cfg.task]()
    check_sources(run, cfg.data, task.corpus, hint="put the original file back to clean this run's data")
    data = task.build(cfg, model_dir=run.model)
    names = data.label_names
    return {
        name: [(text, names[int(label)]) for text, label in zip(data.splits[name].texts, data.splits[name].labels)]
        for name in ("val", "test")
    }


def _flips_among(run: Any, indices: list[int]) -> int | None:
    from attncoach.data.noise import read_label_noise

    noise = read_label_noise(run.path)
    return None if noise is None else sum(1 for i in indices if i in noise["flipped_index"])


def _write(out: Path, fmt: str, text_column: str, label_column: str, splits: dict[str, list]) -> None:
    columns = (text_column, label_column, SPLIT_COLUMN)
    with atomic_text_writer(out) as fh:
        if fmt == "jsonl":
            for split, examples in splits.items():
                for text, label in examples:
                    fh.write(json.dumps(dict(zip(columns, (text, label, split))), ensure_ascii=False) + "\n")
            return
        # rows end in CRLF (RFC 4180; csv's default): a text holding a bare CR or LF is then quoted, and
        # reads back whole (with "\n" rows, a tweet holding a CR split into two rows)
        writer = csv.writer(fh, delimiter="\t" if fmt == "tsv" else ",")
        writer.writerow(columns)
        for split, examples in splits.items():
            writer.writerows((text, label, split) for text, label in examples)
