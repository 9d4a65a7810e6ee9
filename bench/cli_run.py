"""Running attncoach's command line from a benchmark, as a user would: this checkout's src, output to a log."""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def attncoach(args: list[str], log: Path) -> float:
    """Run ``python -m attncoach ARGS`` with its output in ``log``; the wall-clock seconds.

    A failed command ends the benchmark with the command's last lines.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "attncoach", *args], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "".join(log.read_text(encoding="utf-8").splitlines(keepends=True)[-15:])
        raise SystemExit(f"attncoach {' '.join(args[:4])} ... failed ({proc.returncode}):\n{tail}")
    return seconds


def seeds_and_quick(
    doc: str, more: Callable[[argparse.ArgumentParser], None] | None = None
) -> tuple[argparse.Namespace, list[int]]:
    """The command line of a benchmark over seeds: ``--seeds`` (default 0 1 2), ``--quick`` (the first seed
    only) and the options ``more`` adds."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="tiny runs that only prove the script works")
    if more is not None:
        more(parser)
    args = parser.parse_args()
    return args, args.seeds[:1] if args.quick else args.seeds


def add_overrides(parser: argparse.ArgumentParser, flag: str, default: list[str] | None, what: str) -> None:
    """An option taking config overrides (``KEY=VALUE ...``) of ``what``; a ``default`` other than None is shown in its
    help (None: the caller decides, and ``what`` says how)."""
    shown = "" if default is None else f" (default: {' '.join(default) or 'none'})"
    parser.add_argument(flag, nargs="*", default=default, metavar="KEY=VALUE", help=f"overrides of {what}{shown}")


def metrics(run: Path) -> dict[str, Any]:
    """A finished run's metrics.json."""
    return json.loads((run / "metrics.json").read_text(encoding="utf-8"))


def run_row(run: Path, seconds: float) -> dict[str, Any]:
    """What a benchmark keeps of one finished classification run."""
    m = metrics(run)
    return {
        "test_macro_f1": m["test"]["macro_f1"],
        "test_accuracy": m["test"]["accuracy"],
        "val_macro_f1": m["val"]["macro_f1"],
        "steps": m["steps"],
        "examples": m["examples_seen"],
        "train_seconds": m["train_seconds"],
        "stop_reason": m.get("stop_reason"),
        "wall_seconds": round(seconds, 1),
    }


def training_rows(run: Path) -> list[dict[str, Any]]:
    """The run's training examples as it trained on them (``examples.jsonl``: index, text, label, record)."""
    with open(run / "examples.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def held_out_rows(run: Path, scratch: Path) -> dict[str, list[tuple[str, str]]]:
    """The run's val and test examples as (text, label), from ``attncoach clean`` (which rebuilds them from
    the run's data exactly as the run split it); ``scratch`` is a folder for its file."""
    out = scratch / f"held-out-{run.name}.csv"
    if not out.exists():
        attncoach(["clean", str(run), "--out", str(out), "--drop", "1"], scratch / f"clean-{run.name}.log")
    splits: dict[str, list[tuple[str, str]]] = {"val": [], "test": []}
    with open(out, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        for text, label, split in reader:
            if split in splits:
                splits[split].append((text, label))
    return splits


def write_split_csv(path: Path, splits: dict[str, list[tuple[str, str]]]) -> Path:
    """A CSV of text, label and split columns that ``data.path=PATH data.split_column=split`` trains on."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)  # CRLF rows: a text holding a CR is quoted
        writer.writerow(("text", "label", "split"))
        for split, rows in splits.items():
            writer.writerows((text, label, split) for text, label in rows)
    return path


def file_data(path: Path) -> list[str]:
    """Overrides that train a config of a built-in corpus on a split CSV written by :func:`write_split_csv`."""
    return [
        "data.builtin=null",
        f"data.path={path}",
        "data.format=csv",
        "data.text_column=text",
        "data.label_column=label",
        "data.split_column=split",
    ]
