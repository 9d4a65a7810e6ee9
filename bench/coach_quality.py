"""The coach's quality: robustness to the initial LR, equal compute against Optuna, the best fixed schedule.

The scratch model of the main job (`configs/tweets-sentiment.yaml` with `elastic.enabled=false`),
early stopping off, seeds 0, 1, 2, medians over seeds. One "coached run" is 2N optimizer
steps (N = half an epoch, so 2N = one epoch) with the coach's default policies.

1. **Initial LR**: train.lr in {1e-5, 1e-4, 1e-3, 1e-2}, coach on and off, 2N steps each.
   Spread (max - min over the four LRs) of the median test macro-F1; goal with the coach
   <= 2 points; without it reported.
2. **Equal compute against Optuna**: per seed, an Optuna study (TPE sampler seeded, median
   pruner) over the LR (log-uniform 1e-5 .. 1e-2), the batch size (16, 32, 64) and the
   dropout (0 .. 0.3): 8 trials of N steps each, val macro-F1 reported 4 times per trial
   for pruning. Optuna's result = the test macro-F1 of its best trial by val. Goal: the
   coached run (configured LR 1e-3) >= Optuna's best - 0.5 point, at <= 1/4 of its compute
   (compute = training examples processed, pruned trials counted as far as they ran).
3. **Best fixed schedule**: LR in {3e-4, 1e-3, 3e-3} x schedule in {linear, cosine}, coach off,
   2N steps; the best by median val macro-F1. Goal: the coached run's median test macro-F1 >= its.

Runs go to a pool of worker processes (``--workers``, threads split between them); their
wall-clock is reported, never judged.

    python bench/coach_quality.py            # about 25 minutes on 2 cores
    python bench/coach_quality.py --quick    # proves the script works
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conditions import conditions, save  # noqa: E402

CONFIG = "configs/tweets-sentiment.yaml"
BASE = ["elastic.enabled=false", "train.early_stopping_patience=null", "log.tensorboard=false"]
LRS = ("1e-5", "1e-4", "1e-3", "1e-2")
GRID = [(lr, schedule) for lr in ("3e-4", "1e-3", "3e-3") for schedule in ("linear", "cosine")]
SEEDS = (0, 1, 2)
TRIALS = 8


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    logging.getLogger("attncoach").setLevel(logging.WARNING)


def run_one(overrides: list[str], out: str) -> dict[str, Any]:
    """One training run in a worker; its test/val macro-F1 and the compute it used."""
    from attncoach.config import load_config
    from attncoach.rundir import RunDir
    from attncoach.train.recipe import Recipe

    cfg = load_config(CONFIG, [*BASE, *overrides, f"output_dir={out}"])
    start = time.perf_counter()
    metrics = Recipe(cfg, RunDir(Path(out)), quiet=True).run()
    coach = metrics.get("coach") or {}
    return {
        "overrides": overrides,
        "test_macro_f1": metrics["test"]["macro_f1"],
        "val_macro_f1": metrics["val"]["macro_f1"],
        "examples": metrics["examples_seen"],
        "steps": metrics["steps"],
        "seconds": time.perf_counter() - start,
        "lr_scale_end": coach.get("knobs", {}).get("lr_scale", {}).get("end"),
        "decisions": coach.get("decisions", {}),
    }


def optuna_study(seed: int, n_steps: int, trials: int, out: str) -> dict[str, Any]:
    """One seeded Optuna study of ``trials`` trials of ``n_steps`` steps each (in a worker)."""
    import optuna

    from attncoach.config import load_config
    from attncoach.rundir import RunDir
    from attncoach.train.recipe import Recipe

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    class Pruned(Exception):
        pass

    class TrialRecipe(Recipe):
        """Reports each val macro-F1 to the trial; stops when the pruner says so."""

        def __init__(self, cfg, run, trial):
            super().__init__(cfg, run, quiet=True)
            self.trial = trial

        def evaluate_and_track(self, bar):
            super().evaluate_and_track(bar)
            self.trial.report(self.state.history[-1]["val_macro_f1"], self.state.step)
            if self.trial.should_prune():
                raise Pruned

    records: list[dict[str, Any]] = []

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-5, 1e-2, log=True)
        batch = trial.suggest_categorical("batch_size", [16, 32, 64])
        dropout = trial.suggest_float("dropout", 0.0, 0.3)
        cfg = load_config(
            CONFIG,
            [
                *BASE,
                f"train.seed={seed}",
                f"train.lr={lr}",
                f"train.batch_size={batch}",
                f"model.dropout={dropout}",
                f"train.max_steps={n_steps}",
                f"train.eval_every={max(1, n_steps // 4)}",
                "coach.enabled=false",
                f"output_dir={out}/trial-{trial.number}",
            ],
        )
        recipe = TrialRecipe(cfg, RunDir(Path(out) / f"trial-{trial.number}"), trial)
        record = {"trial": trial.number, "params": dict(trial.params)}
        records.append(record)
        try:
            metrics = recipe.run()
        except Pruned:
            record.update(pruned=True, steps=recipe.state.step, examples=recipe.state.examples_seen)
            raise optuna.TrialPruned() from None
        record.update(
            pruned=False,
            steps=metrics["steps"],
            examples=metrics["examples_seen"],
            val_macro_f1=recipe.state.best_metric,
            test_macro_f1=metrics["test"]["macro_f1"],
        )
        return recipe.state.best_metric

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )
    start = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    best = next(r for r in records if r["trial"] == study.best_trial.number)
    return {
        "seed": seed,
        "trials": records,
        "best_trial": best["trial"],
        "best_params": best["params"],
        "best_val_macro_f1": best["val_macro_f1"],
        "best_test_macro_f1": best["test_macro_f1"],
        "examples": sum(r["examples"] for r in records),
        "steps": sum(r["steps"] for r in records),
        "pruned": sum(r["pruned"] for r in records),
        "seconds": time.perf_counter() - start,
    }


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny runs that only prove the script works")
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel (threads are split between them)")
    args = parser.parse_args()
    measure(args.quick, args.workers)


def measure(quick: bool, workers: int) -> None:
    """Run the three comparisons and save ``results/coach_quality.json``."""
    args = argparse.Namespace(quick=quick, workers=workers)
    info = conditions()
    lrs, grid, seeds, trials = (LRS, GRID, SEEDS, TRIALS) if not args.quick else (LRS[2:], GRID[:2], (0,), 2)
    length = ["train.max_steps=20", "train.eval_every=10"] if args.quick else ["train.epochs=1"]
    n_steps = 10 if args.quick else None  # N: half an epoch, filled in from the first run
    threads = max(1, (os.cpu_count() or 1) // args.workers)
    start = time.perf_counter()
    with (
        tempfile.TemporaryDirectory() as tmp,
        ProcessPoolExecutor(args.workers, initializer=_init_worker, initargs=(threads,)) as pool,
    ):
        jobs: dict[tuple, Any] = {}
        for lr in lrs:
            for seed in seeds:
                for coached in (True, False):
                    key = ("lr", lr, seed, coached)
                    jobs[key] = pool.submit(
                        run_one,
                        [*length, f"train.lr={lr}", f"train.seed={seed}", f"coach.enabled={str(coached).lower()}"],
                        f"{tmp}/{len(jobs)}",
                    )
        for lr, schedule in grid:
            for seed in seeds:
                if ("lr", lr, seed, False) in jobs and schedule == "linear":
                    continue  # the same run as part 1's
                jobs[("grid", lr, schedule, seed)] = pool.submit(
                    run_one,
                    [
                        *length,
                        f"train.lr={lr}",
                        f"train.schedule={schedule}",
                        f"train.seed={seed}",
                        "coach.enabled=false",
                    ],
                    f"{tmp}/{len(jobs)}",
                )
        first = jobs[("lr", lrs[0], seeds[0], False)].result()
        n_steps = n_steps or first["steps"] // 2
        studies = [pool.submit(optuna_study, seed, n_steps, trials, f"{tmp}/optuna-{seed}") for seed in seeds]
        results = {key: job.result() for key, job in jobs.items()}
        for key, result in results.items():
            print(key, f"test {result['test_macro_f1']:.4f}", f"lr_scale_end {result['lr_scale_end']}", flush=True)
        studies = [job.result() for job in studies]
    seconds = time.perf_counter() - start

    # 1. initial LR
    robust: dict[str, Any] = {}
    for coached in (True, False):
        per_lr = {lr: [results[("lr", lr, s, coached)]["test_macro_f1"] for s in seeds] for lr in lrs}
        medians = {lr: median(v) for lr, v in per_lr.items()}
        robust["coach_on" if coached else "coach_off"] = {
            "test_macro_f1_per_seed": per_lr,
            "median_test_macro_f1": medians,
            "spread_points": 100 * (max(medians.values()) - min(medians.values())),
            "lr_scale_end": {lr: [results[("lr", lr, s, coached)]["lr_scale_end"] for s in seeds] for lr in lrs},
        }
    robust["goal_spread_points"] = 2.0
    robust["met"] = robust["coach_on"]["spread_points"] <= 2.0
    coached = (
        [results[("lr", "1e-3", s, True)] for s in seeds]
        if "1e-3" in lrs
        else [results[("lr", lrs[0], s, True)] for s in seeds]
    )
    coached_f1 = median([r["test_macro_f1"] for r in coached])
    coached_examples = median([r["examples"] for r in coached])

    # 2. Optuna
    optuna_f1 = median([s["best_test_macro_f1"] for s in studies])
    optuna_examples = median([s["examples"] for s in studies])
    versus_optuna = {
        "n_steps_per_trial": n_steps,
        "trials": trials,
        "studies": studies,
        "optuna_best_test_macro_f1_median": optuna_f1,
        "optuna_examples_median": optuna_examples,
        "coached_test_macro_f1_median": coached_f1,
        "coached_examples_median": coached_examples,
        "points_vs_optuna": 100 * (coached_f1 - optuna_f1),
        "compute_fraction": coached_examples / optuna_examples,
        "met_quality": coached_f1 >= optuna_f1 - 0.005,
        "met_compute": coached_examples <= optuna_examples / 4,
    }

    # 3. best fixed schedule (chosen by val)
    def grid_runs(lr: str, schedule: str) -> list[dict[str, Any]]:
        return [
            results[("lr", lr, s, False)]
            if schedule == "linear" and ("lr", lr, s, False) in results
            else results[("grid", lr, schedule, s)]
            for s in seeds
        ]

    table = {
        f"{lr} {schedule}": {
            "val": median([r["val_macro_f1"] for r in grid_runs(lr, schedule)]),
            "test": median([r["test_macro_f1"] for r in grid_runs(lr, schedule)]),
        }
        for lr, schedule in grid
    }
    best = max(table, key=lambda k: table[k]["val"])
    fixed = {
        "grid": table,
        "best": best,
        "best_test_macro_f1_median": table[best]["test"],
        "coached_test_macro_f1_median": coached_f1,
        "points_vs_best_fixed": 100 * (coached_f1 - table[best]["test"]),
        "met": coached_f1 >= table[best]["test"],
    }

    print(
        f"initial LR spread: coach on {robust['coach_on']['spread_points']:.2f} points, "
        f"off {robust['coach_off']['spread_points']:.2f}"
    )
    print(
        f"vs Optuna: coached {coached_f1:.4f} vs best {optuna_f1:.4f} "
        f"({versus_optuna['points_vs_optuna']:+.2f} points) at {versus_optuna['compute_fraction']:.2f} of its examples"
    )
    print(
        f"vs best fixed ({best}): {table[best]['test']:.4f}, coached {coached_f1:.4f} "
        f"({fixed['points_vs_best_fixed']:+.2f} points)"
    )
    save(
        "coach_quality",
        {
            "benchmark": "coach_quality",
            "quick": args.quick,
            "config": CONFIG,
            "base": BASE,
            "length": length,
            "seeds": list(seeds),
            "workers": args.workers,
            "threads": threads,
            "conditions": info,
            "wall_seconds": seconds,
            "initial_lr": robust,
            "versus_optuna": versus_optuna,
            "fixed_schedule": fixed,
        },
        quick=args.quick,
    )


if __name__ == "__main__":
    main()
