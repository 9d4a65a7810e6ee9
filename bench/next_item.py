"""next_item on MovieLens-100k: attncoach's SASRec beside popularity, implicit BPR / ALS and RecBole's SASRec.

One script, one split and one protocol (see ``bench/next_item_baselines.py``, which computes the
baselines): leave-one-out; the test target ranked among all items the user has not
interacted with (HR@10, NDCG@10, MRR), and among 100 sampled negatives (``*_sampled``).

attncoach trains ``configs/movielens-sasrec.yaml`` as it is (an elastic supernet over
widths {0.5, 1} at full depth, the coach on, early stopping on val NDCG@10) for seeds 0, 1, 2
(``--seeds`` names others), and reports the full model's test metrics and those of its width-0.5 sub-net (full depth), measured
on the same weights with ``set_subnet``. Wall-clock is the whole ``attncoach.train`` call (data,
training, evaluations, checkpoints) with 2 torch threads.

    python bench/next_item.py            # about 50 minutes on 2 cores with the baselines (RecBole needs its venv)
    python bench/next_item.py --baselines bench/results/next_item_baselines.json   # attncoach only, about 20 minutes
    python bench/next_item.py --quick    # a smoke test: tiny settings, seconds
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import attncoach  # noqa: E402
from attncoach.elastic.space import subnet_for  # noqa: E402
from attncoach.tasks import TASKS  # noqa: E402
from attncoach.train.settings import load_run_config  # noqa: E402
from conditions import RESULTS, conditions  # noqa: E402
from next_item_baselines import BASELINES, RECBOLE_PYTHON, load_data, recbole_sasrec, table  # noqa: E402

CONFIG = "configs/movielens-sasrec.yaml"
RUNS = Path(__file__).resolve().parent / "runs" / "next_item"
SEEDS = (0, 1, 2)
METRICS = ("hr@10", "ndcg@10", "mrr", "hr@10_sampled", "ndcg@10_sampled")


def attncoach_row(seed: int, quick: bool) -> dict[str, Any]:
    """Train the config with ``seed``; the full model's and the width-0.5 sub-net's test metrics."""
    out = RUNS / f"seed{seed}{'-quick' if quick else ''}"
    shutil.rmtree(out, ignore_errors=True)
    overrides: dict[str, Any] = {
        "output_dir": str(out),
        "train": {"seed": seed, "threads": 2},
        "log": {"tensorboard": False},
    }
    if quick:
        overrides["train"].update(max_steps=20, eval_every=10)
    start = time.perf_counter()
    run = attncoach.train(CONFIG, quiet=True, **overrides)
    wall = time.perf_counter() - start
    cfg = load_run_config(run.dir / "config.yaml")
    task = TASKS[cfg.task]()
    data = task.build(cfg, model_dir=run.dir / "model")
    model = attncoach.load(run.dir).model
    model.set_subnet(subnet_for(model.encoder.config, 0.5, 1.0))
    half = task.evaluate(model, data.splits["test"], data)
    model.set_subnet(None)
    test = run.metrics["test"]
    return {
        "name": f"attncoach seed {seed}",
        **{k: test[k] for k in METRICS},
        "seconds": wall,
        "train_seconds": run.metrics["train_seconds"],
        "steps": run.metrics["steps"],
        "best_step": run.metrics["best_step"],
        "stop_reason": run.metrics["stop_reason"],
        "width_0.5": {k: half[k] for k in METRICS},
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def median_row(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return {"name": name, **{k: statistics.median(r[k] for r in rows) for k in (*METRICS, "seconds")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings (a smoke test)")
    parser.add_argument("--recbole-python", type=Path, default=RECBOLE_PYTHON, help="python of the RecBole venv")
    parser.add_argument(
        "--baselines",
        type=Path,
        metavar="FILE.json",
        help="take the baseline rows from a next_item_baselines.py result (same split and protocol) instead of rerunning",
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=list(SEEDS), help="attncoach's training seeds (default: 0 1 2)"
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    measured_under = conditions()  # at the start: the code that runs is the code recorded
    data = load_data()
    rows: list[dict[str, Any]] = []
    baselines_from = None
    if args.baselines is not None:
        saved = json.loads(args.baselines.read_text())
        rows, baselines_from = saved["rows"], {"file": str(args.baselines), "conditions": saved["conditions"]}
    else:
        baselines = BASELINES | {"recbole-sasrec": functools.partial(recbole_sasrec, python=args.recbole_python)}
        for name, baseline in baselines.items():
            print(f"running {name}", file=sys.stderr, flush=True)
            rows.append(baseline(data, quick=args.quick))
    ours = []
    for seed in args.seeds[:1] if args.quick else args.seeds:
        print(f"training attncoach seed {seed}", file=sys.stderr, flush=True)
        ours.append(attncoach_row(seed, args.quick))
    half = [{**r["width_0.5"], "seconds": r["seconds"]} for r in ours]
    summary_rows = [median_row(ours, "attncoach (median)"), median_row(half, "  width 0.5")]
    print(table([*rows, *ours, *summary_rows]))
    full, small = summary_rows[0], summary_rows[1]
    goals: dict[str, Any] = {
        "width_0.5_relative_gap": {k: 1 - small[k] / full[k] for k in ("hr@10", "ndcg@10") if full[k] > 0},
    }
    by_name = {r["name"]: r for r in rows if "error" not in r}
    if "popularity" in by_name:
        goals["over_popularity"] = {k: full[k] / by_name["popularity"][k] for k in ("hr@10", "ndcg@10")}
    if "recbole-sasrec" in by_name:
        goals["over_recbole_sasrec"] = {k: full[k] / by_name["recbole-sasrec"][k] for k in ("hr@10", "ndcg@10")}
    print(json.dumps(goals, indent=2))
    payload = {
        "benchmark": "next_item",
        "quick": args.quick,
        "conditions": measured_under,
        "config": CONFIG,
        "data": {"corpus": "movielens-100k", **data.seqs.stats},
        "rows": rows,
        "baselines_from": baselines_from,
        "attncoach": ours,
        "summary": summary_rows,
        "goals": goals,
    }
    out = RESULTS / f"next_item{'_quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
