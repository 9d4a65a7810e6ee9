"""Baselines for next-item recommendation on MovieLens-100k, on attncoach's split and protocol.

The data and the protocol are attncoach's own: ``load_builtin_interactions("movielens-100k")``
(read where the recbole wheel installed it, never copied), ``build_sequences(min_interactions=3)``
and ``leave_one_out``: per user with chronological history h, train h[:-2], val target h[-2]
from h[:-2], test target h[-1] from h[:-1].

Metrics (``attncoach.tasks.ranking``), on test for every user:

- full ranking over all items, the items of the user's prefix excluded (the target never is):
  ``hr@10``, ``ndcg@10``, ``mrr``;
- the sampled protocol, labelled as such: ``hr@10_sampled``, ``ndcg@10_sampled``, the target
  among 100 negatives from ``sampled_negatives(num_items, seqs.histories, n=100, seed=0)``
  (never in the user's whole history).

Val (h[-2] from h[:-2], h[:-2] excluded) chooses hyperparameters and epochs; test is reported once.

Baselines, each a function ``(data, quick) -> row`` in :data:`BASELINES`; a row holds the test
metrics, ``seconds`` (wall-clock of the final fit and its scoring), ``settings``, ``name`` and,
where val chose something, ``val`` (the same metrics on val) and ``search_seconds``:

- ``popularity``: items by their count, ties by item index (lower first). Val counts h[:-2] of
  every user; test counts h[:-1] of every user (the val items included).
- ``implicit-bpr`` / ``implicit-als``: ``implicit.cpu`` BPR and ALS on the binary user x item
  matrix. Each setting of a tiny grid is fitted on h[:-2] of every user and scored on val; the
  best by val NDCG@10 is refitted on h[:-1] of every user (the val item included, as a
  sequential model sees it in its test prefix) and scored on test. ``random_state=0``, 2 threads
  (BPR's multi-threaded SGD is Hogwild-style, so its figures move in the third decimal between runs).
- ``recbole-sasrec``: RecBole's own SASRec with its default settings (hidden 64, 2 layers, 2
  heads, inner 256, dropout 0.5/0.5, CE loss, max length 50, Adam lr 0.001, batch 2048), in a
  subprocess with a separate venv (``bench/recbole_sasrec_driver.py``). It gets the same split as
  RecBole benchmark files: train = every prefix/next-item pair inside h[:-2] (RecBole's own
  sequence augmentation), valid = (h[:-2], h[-2]), test = (h[:-1], h[-1]), prefixes cut to the
  last 50 items. Early stopping on val NDCG@10 of our protocol (patience 5, at most 30 epochs)
  and a training budget (``--recbole-minutes``, 95 by default; checked at epoch ends): one epoch
  of RecBole's SASRec takes about 1.6 minutes on 2 quiet CPU cores (3-4 on shared ones), and at
  5ef620b it early-stopped after 20 epochs (32 minutes); a run that stops on its budget instead
  is marked ``undertrained``. The metrics are computed here from the best model's scores of every
  item, so the protocol is the one above. RecBole's own full-sort evaluation of the same weights
  is recorded beside (``recbole_own_eval``); it differs: for sequential models RecBole masks no
  history items at all (only padding), its MRR is cut at 10, and its top-k breaks ties by
  ``torch.topk`` order, not in the target's favour.

The RecBole venv (attncoach's venv keeps recbole installed with ``--no-deps``, as a data source only)::

    python3 -m venv /tmp/recbole-venv
    /tmp/recbole-venv/bin/pip install torch==2.13.0
    /tmp/recbole-venv/bin/pip install recbole==1.2.1 "numpy<2" "pandas<2.3" "setuptools>=77,<81"

(recbole 1.2.1 imports ray 2.6.3, which needs ``pkg_resources`` (setuptools < 81) and ``np.bool8``
(numpy < 2); pandas 2.3 and later need numpy >= 2; torch 2.13 asks for setuptools >= 77.)
Another location: ``--recbole-python``.

    python bench/next_item_baselines.py            # about 15 minutes on 2 cores, 10 of them RecBole's budget
    python bench/next_item_baselines.py --quick    # proves the script works (RecBole skipped without its venv)

``bench/next_item.py`` imports :func:`load_data`, :func:`evaluate` and :data:`BASELINES`.
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attncoach.data.interactions import (  # noqa: E402
    Sequences,
    SequenceSplit,
    build_sequences,
    leave_one_out,
    load_builtin_interactions,
    sampled_negatives,
)
from attncoach.tasks import ranking  # noqa: E402
from conditions import RESULTS, conditions  # noqa: E402

BENCH = Path(__file__).resolve().parent
RECBOLE_PYTHON = Path("/tmp/recbole-venv/bin/python")
RECBOLE_DATASET = "ml100k-loo"  # not "ml-100k": RecBole would add its ml-100k.yaml defaults and try to download
MAX_ITEM_LIST_LENGTH = 50
RECBOLE_MAX_EPOCHS = 30
RECBOLE_PATIENCE = 5
QUICK_TRAIN_ROWS = 4096
RECBOLE_MINUTES = 95.0  # room for its 30 epochs on 2 quiet cores (at 5ef620b early stopping ended it after 20)
THREADS = 2
SEED = 0
K = 10


@dataclass(frozen=True)
class NextItemData:
    """MovieLens-100k as attncoach's ``next_item`` task sees it.

    Attributes:
        seqs: the chronological histories (``build_sequences(min_interactions=3)``).
        val: prefix h[:-2], target h[-2] per user.
        test: prefix h[:-1], target h[-1] per user.
        negatives: (U, 100) sampled negatives, never in the user's whole history.
        num_items: V; item indices are 1..V, 0 is padding.
    """

    seqs: Sequences
    val: SequenceSplit
    test: SequenceSplit
    negatives: np.ndarray

    @property
    def num_items(self) -> int:
        return len(self.seqs.item_ids)


def load_data() -> NextItemData:
    """MovieLens-100k, leave-one-out, with the sampled negatives of the sampled protocol."""
    seqs = build_sequences(load_builtin_interactions("movielens-100k"), min_interactions=3)
    split = leave_one_out(seqs)
    negatives = sampled_negatives(len(seqs.item_ids), seqs.histories, n=100, seed=SEED)
    return NextItemData(seqs, split["val"], split["test"], negatives)


def evaluate(scores: torch.Tensor | np.ndarray, case: SequenceSplit, negatives: np.ndarray) -> dict[str, float]:
    """The full-ranking metrics (prefix excluded) and the sampled ones of (U, V + 1) scores.

    Example:
        >>> data = load_data()
        >>> evaluate(torch.zeros(len(data.test.target), data.num_items + 1), data.test, data.negatives)["hr@10"]
        1.0
    """
    scores = torch.as_tensor(scores)
    metrics = ranking.ranking_metrics(ranking.ranks_full(scores, case.target, case.prefix), k=K)
    sampled = ranking.ranking_metrics(ranking.ranks_sampled(scores, case.target, negatives), k=K)
    return metrics | {f"hr@{K}_sampled": sampled[f"hr@{K}"], f"ndcg@{K}_sampled": sampled[f"ndcg@{K}"]}


def user_items(prefixes: list[np.ndarray], num_items: int) -> sp.csr_matrix:
    """The binary (U, V + 1) float32 matrix of the items in each prefix (column 0, padding, empty)."""
    rows = np.repeat(np.arange(len(prefixes)), [len(p) for p in prefixes])
    cols = np.concatenate(prefixes)
    matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(prefixes), num_items + 1))
    matrix.data[:] = 1.0  # a repeated (user, item) pair counts once
    return matrix


def popularity_scores(prefixes: list[np.ndarray], num_items: int) -> torch.Tensor:
    """Every user gets the item counts of ``prefixes``; ties go to the lower item index.

    Example:
        >>> popularity_scores([np.array([2, 3]), np.array([3])], 3)[0].argsort(descending=True).tolist()
        [3, 2, 1, 0]
    """
    counts = np.bincount(np.concatenate(prefixes), minlength=num_items + 1).astype(np.float64)
    tie_break = 1.0 - np.arange(num_items + 1) / (num_items + 1)  # in (0, 1]: never outweighs a count
    return torch.from_numpy(counts + tie_break).expand(len(prefixes), -1)


def popularity(data: NextItemData, quick: bool = False) -> dict[str, Any]:
    """Items ranked by their count: val from h[:-2], test from h[:-1] of every user."""
    start = time.perf_counter()
    metrics = evaluate(popularity_scores(data.test.prefix, data.num_items), data.test, data.negatives)
    seconds = time.perf_counter() - start
    val = evaluate(popularity_scores(data.val.prefix, data.num_items), data.val, data.negatives)
    return {
        "name": "popularity",
        **metrics,
        "seconds": seconds,
        "settings": {"ties": "lower item index first"},
        "val": val,
    }


def _implicit_model(kind: str, settings: dict[str, Any]) -> Any:
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    model = {"bpr": BayesianPersonalizedRanking, "als": AlternatingLeastSquares}[kind]
    return model(**settings, num_threads=THREADS, random_state=SEED)


def implicit_scores(kind: str, settings: dict[str, Any], prefixes: list[np.ndarray], num_items: int) -> torch.Tensor:
    """Fit an ``implicit.cpu`` model on the prefixes; (U, V + 1) dot-product scores."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):  # implicit's advice: its own threads, not BLAS's
        model = _implicit_model(kind, settings)
        model.fit(user_items(prefixes, num_items), show_progress=False)
    return torch.from_numpy(np.asarray(model.user_factors) @ np.asarray(model.item_factors).T)


# tried on val beforehand: BPR's best (32 factors, 100 iterations) lies inside its grid; ALS's factors too
# (256 factors and 8 fell well behind), its alpha at the grid's low edge (0.5 and 1 within val's noise)
IMPLICIT_GRIDS = {
    "bpr": [
        {"factors": factors, "iterations": iterations, "learning_rate": 0.01, "regularization": 0.01}
        for factors in (16, 32, 64)
        for iterations in (30, 100, 300)
    ],
    "als": [
        {"factors": factors, "iterations": 15, "regularization": 0.1, "alpha": alpha}
        for factors in (16, 32, 64)
        for alpha in (0.5, 1.0, 10.0)
    ],
}
IMPLICIT_QUICK = {
    "bpr": {"factors": 16, "iterations": 5, "learning_rate": 0.01, "regularization": 0.01},
    "als": {"factors": 16, "iterations": 2, "regularization": 0.1, "alpha": 1.0},
}


def implicit_baseline(kind: str, data: NextItemData, quick: bool = False) -> dict[str, Any]:
    """The grid's settings fitted on h[:-2] and scored on val; the best refitted on h[:-1], scored on test."""
    search_start = time.perf_counter()
    grid = [IMPLICIT_QUICK[kind]] if quick else IMPLICIT_GRIDS[kind]
    trials = []
    for settings in grid:
        val = evaluate(implicit_scores(kind, settings, data.val.prefix, data.num_items), data.val, data.negatives)
        trials.append({"settings": settings, "val": val})
    best = max(trials, key=lambda trial: trial["val"][f"ndcg@{K}"])
    start = time.perf_counter()
    scores = implicit_scores(kind, best["settings"], data.test.prefix, data.num_items)
    metrics = evaluate(scores, data.test, data.negatives)
    seconds = time.perf_counter() - start
    return {
        "name": f"implicit-{kind}",
        **metrics,
        "seconds": seconds,
        "search_seconds": time.perf_counter() - search_start,
        "settings": best["settings"] | {"num_threads": THREADS, "random_state": SEED},
        "val": best["val"],
        "trials": trials,
    }


def implicit_bpr(data: NextItemData, quick: bool = False) -> dict[str, Any]:
    """``implicit.cpu`` BPR (see :func:`implicit_baseline`)."""
    return implicit_baseline("bpr", data, quick)


def implicit_als(data: NextItemData, quick: bool = False) -> dict[str, Any]:
    """``implicit.cpu`` ALS (see :func:`implicit_baseline`)."""
    return implicit_baseline("als", data, quick)


def write_recbole_files(data: NextItemData, work: Path, train_rows: int | None = None) -> None:
    """Our leave-one-out split as RecBole benchmark files, and the exclusion lists, in ``work``.

    Train has one row per next item inside h[:-2] (prefix h[:-2][:k], target h[:-2][k], k >= 1);
    valid (h[:-2], h[-2]) and test (h[:-1], h[-1]) one row per user; prefixes keep their last
    ``MAX_ITEM_LIST_LENGTH`` items. Tokens are attncoach's user positions and item indices.
    ``train_rows`` keeps only the first rows of train (a smoke test).
    """
    folder = work / RECBOLE_DATASET
    folder.mkdir(parents=True)
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"

    def row(user: int, prefix: np.ndarray, target: int) -> str:
        return f"{user}\t{' '.join(map(str, prefix[-MAX_ITEM_LIST_LENGTH:].tolist()))}\t{target}\n"

    train = [row(u, h[:k], int(h[k])) for u, h in enumerate(data.val.prefix) for k in range(1, len(h))]
    train = train[:train_rows]
    cases = {"valid": data.val, "test": data.test}
    for name, lines in [("train", train)] + [
        (name, [row(u, p, int(t)) for u, (p, t) in enumerate(zip(case.prefix, case.target))])
        for name, case in cases.items()
    ]:
        (folder / f"{RECBOLE_DATASET}.{name}.inter").write_text(header + "".join(lines))
    arrays = {}
    for name, case in (("val", data.val), ("test", data.test)):
        arrays[f"{name}_exclude_flat"] = np.concatenate(case.prefix)
        arrays[f"{name}_exclude_offsets"] = np.concatenate([[0], np.cumsum([len(p) for p in case.prefix])])
        arrays[f"{name}_target"] = case.target
    np.savez(work / "split.npz", **arrays)


def recbole_sasrec(
    data: NextItemData,
    quick: bool = False,
    python: Path = RECBOLE_PYTHON,
    minutes: float = RECBOLE_MINUTES,
    device: str = "cpu",
) -> dict[str, Any]:
    """RecBole's SASRec in its own venv on our split; metrics computed here from its scores.

    Args:
        data: the split (:func:`load_data`).
        quick: one epoch on the first ``QUICK_TRAIN_ROWS`` training rows (a smoke test).
        python: the python of the RecBole venv.
        minutes: no new epoch after this much training (``stopped_by`` is then ``time_budget``
            and the row is marked ``undertrained``).
        device: "cpu" or "cuda" for RecBole's model.

    Returns:
        The row; ``error`` set (and no metrics) when the venv is missing or RecBole fails.
        ``full_unmasked`` holds the full-ranking metrics with nothing excluded, computed here from
        the same scores: they should equal ``recbole_own_eval["test"]`` (``mrr@10`` aside, which
        RecBole cuts at 10), which checks the id mapping between RecBole and attncoach.
    """
    row: dict[str, Any] = {"name": "recbole-sasrec"}
    if not python.is_file():
        missing = f"no RecBole venv at {python} (see the install commands in this script's docstring)"
        return row | {"error": missing, "skipped": quick}
    max_epochs, patience = (1, 1) if quick else (RECBOLE_MAX_EPOCHS, RECBOLE_PATIENCE)
    with tempfile.TemporaryDirectory(prefix="recbole-sasrec-") as tmp:
        work = Path(tmp)
        write_recbole_files(data, work, train_rows=QUICK_TRAIN_ROWS if quick else None)
        command = [
            str(python),
            str(BENCH / "recbole_sasrec_driver.py"),
            f"--work={work}",
            f"--ranking={ranking.__file__}",
            f"--max-epochs={max_epochs}",
            f"--patience={patience}",
            f"--threads={THREADS}",
            f"--minutes={minutes}",
            f"--device={device}",
        ]
        timeout = 60 * minutes + 1800  # the budget is checked at epoch ends; one CPU epoch takes minutes
        start = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return row | {"error": f"RecBole did not finish in {timeout:.0f} s"}
        wall = time.perf_counter() - start
        if done.returncode != 0:
            return row | {"error": f"RecBole failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}"}
        result = json.loads((work / "result.json").read_text())
        scores = {name: np.load(work / f"scores_{name}.npy") for name in ("val", "test")}
    metrics = evaluate(scores["test"], data.test, data.negatives)
    nothing = [np.empty(0, dtype=np.int64)] * len(data.test.target)
    unmasked = ranking.ranking_metrics(ranking.ranks_full(torch.from_numpy(scores["test"]), data.test.target, nothing))
    return row | {
        **metrics,
        "undertrained": result["stopped_by"] == "time_budget",
        "seconds": result["seconds"],
        "seconds_subprocess": wall,
        "settings": result["settings"],
        "val": evaluate(scores["val"], data.val, data.negatives),
        "epochs_run": result["epochs_run"],
        "best_epoch": result["best_epoch"],
        "stopped_by": result["stopped_by"],
        "history": result["history"],
        "train_rows": result["train_rows"],
        "full_unmasked": unmasked,
        "recbole_own_eval": result["recbole_own_eval"],
        "versions": result["versions"],
    }


BASELINES: dict[str, Callable[..., dict[str, Any]]] = {
    "popularity": popularity,
    "implicit-bpr": implicit_bpr,
    "implicit-als": implicit_als,
    "recbole-sasrec": recbole_sasrec,
}


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a fixed-width text table."""
    columns = [("HR@10", "hr@10"), ("NDCG@10", "ndcg@10"), ("HR@10 smp", "hr@10_sampled")]
    columns += [("NDCG@10 smp", "ndcg@10_sampled"), ("seconds", "seconds")]
    lines = [f"{'name':<16}" + "".join(f"{title:>13}" for title, _ in columns)]
    for row in rows:
        if "error" in row:
            lines.append(f"{row['name']:<16}  {'skipped' if row.get('skipped') else 'error'}: {row['error'][:200]}")
            continue
        lines.append(f"{row['name']:<16}" + "".join(f"{row[key]:>13.4f}" for _, key in columns))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings, seconds; RecBole skipped without its venv")
    parser.add_argument(
        "--out", type=Path, default=None, help="the JSON (default bench/results/next_item_baselines.json)"
    )
    parser.add_argument("--recbole-python", type=Path, default=RECBOLE_PYTHON, help="python of the RecBole venv")
    parser.add_argument("--recbole-minutes", type=float, default=RECBOLE_MINUTES, help="RecBole's training budget")
    parser.add_argument("--recbole-device", choices=("cpu", "cuda"), default="cpu", help="RecBole's device")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    data = load_data()
    recbole = functools.partial(
        recbole_sasrec, python=args.recbole_python, minutes=args.recbole_minutes, device=args.recbole_device
    )
    baselines = BASELINES | {"recbole-sasrec": recbole}
    rows = []
    for name, baseline in baselines.items():
        print(f"running {name}", file=sys.stderr, flush=True)
        rows.append(baseline(data, quick=args.quick))
    print(table(rows))
    import implicit
    import scipy

    payload = {
        "benchmark": "next_item_baselines",
        "quick": args.quick,
        "conditions": conditions()
        | {"commit_full": _git_head(), "implicit": implicit.__version__, "scipy": scipy.__version__},
        "data": {"corpus": "movielens-100k", **data.seqs.stats, "sampled_negatives": int(data.negatives.shape[1])},
        "protocol": {
            "split": "leave-one-out: train h[:-2]; val h[-2] from h[:-2]; test h[-1] from h[:-1]",
            "full": "rank among all items, the prefix excluded, ties in the target's favour (attncoach.tasks.ranking)",
            "sampled": "rank among 100 negatives from sampled_negatives(num_items, histories, n=100, seed=0)",
            "k": K,
        },
        "rows": rows,
    }
    out = args.out or RESULTS / f"next_item_baselines{'_quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"saved {out}")


def _git_head() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=BENCH, check=True)
        return done.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    main()
