"""The coach against hyperparameter search, fairly: one coached run, Optuna TPE, Ray PBT with and without the coach's state.

The main job's data and scratch model (``configs/tweets-sentiment.yaml``) without its supernet on every
side (``elastic.enabled=false``: the comparison is about the optimisation, and the supernet would double
every side's steps alike). Compute is counted in training examples (``examples_seen``), pruned trials
as far as they ran. Every side runs through the CLI (``python -m attncoach``), as a user would.

- **coached**: the config as it is (coach on, LR 1e-3), seeds 1, 2, 3; the median test macro-F1.
- **optuna**: ``attncoach tune --backend optuna``, TPE (its 8 random start-up trials counted among the
  24), the median pruner, coach off, seed 0, every trial as long as the coached run (the config's
  3 epochs, early stopping as configured); the space: ``train.lr`` log-uniform [1e-5, 1e-2],
  ``train.batch_size`` {16, 32, 64}, ``model.dropout`` [0, 0.3], ``train.weight_decay`` [0, 0.1].
  The best trial by val macro-F1 is retrained on the fresh seeds 1, 2, 3 (``--retrain-best``);
  its median test macro-F1 is Optuna's result. Optuna's examples are its trials', not the retraining's.
- **pbt**: ``attncoach tune --backend ray`` with ``tune.scheduler=pbt``, a population of 4 coached
  members over the same space but the batch size (a member keeps its batch size), each member
  trained for a quarter of Optuna's examples; once with the coach's state copied on exploit
  (``tune.pbt_coach_state=true``) and once without, for each of ``--pbt-seeds`` (default 0; with the coach's
  state first on even seeds, without it first on odd ones). The best member's test macro-F1 per seed and
  its median over the seeds. A member the coach stops on a plateau ("nothing left to try") ends
  before its share: the examples its lineage trained are reported beside the budget.

Goals (issue 17): the coached run within 0.3 point of the retrained Optuna best at no more than 1/8 of
Optuna's examples; PBT with the coach's state at or above PBT without it.

    python bench/tune.py                              # every part: about 1 hour on 2 cores (seed 0)
    python bench/tune.py --parts coached optuna       # some parts; others are kept from results/tune.json
    python bench/tune.py --parts pbt --pbt-seeds 1 2  # more PBT seeds; the seeds already in results/tune.json stay
    python bench/tune.py --quick                      # tiny runs that only prove the script works
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_run import attncoach  # noqa: E402
from conditions import RESULTS, conditions, save  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "configs/tweets-sentiment.yaml"
BASE = ["elastic.enabled=false", "log.tensorboard=false", "log.report=false"]
SPACE = (
    "tune.space={train.lr: {log_uniform: [1.0e-5, 1.0e-2]}, train.batch_size: {choice: [16, 32, 64]}, "
    "model.dropout: {uniform: [0.0, 0.3]}, train.weight_decay: {uniform: [0.0, 0.1]}}"
)
PBT_SPACE = (
    "tune.space={train.lr: {log_uniform: [1.0e-5, 1.0e-2]}, model.dropout: {uniform: [0.0, 0.3]}, "
    "train.weight_decay: {uniform: [0.0, 0.1]}}"
)
SEEDS = (1, 2, 3)  # the retrained best and the coached run; the trials run seed 0
TRIALS, STARTUP, POPULATION = 24, 8, 4
QUICK = ["train.max_steps=30", "train.eval_every=10", "train.epochs=1", "data.max_length=32"]
PARTS = ("coached", "optuna", "pbt")


def coached(tmp: Path, extra: list[str], seeds: tuple[int, ...]) -> dict[str, Any]:
    runs = []
    for seed in seeds:
        out = tmp / f"coached-seed-{seed}"
        seconds = attncoach(
            ["train", "--quiet", "--config", CONFIG, *BASE, *extra, f"train.seed={seed}", f"output_dir={out}"],
            tmp / f"coached-{seed}.log",
        )
        metrics = json.loads((out / "metrics.json").read_text())
        runs.append(_run_row(seed, metrics, seconds))
        print(f"coached, seed {seed}: test macro-F1 {runs[-1]['test_macro_f1']:.4f}, {runs[-1]['examples']:,} examples")
    return {
        "runs": runs,
        "median_test_macro_f1": statistics.median(r["test_macro_f1"] for r in runs),
        "examples": statistics.median(r["examples"] for r in runs),
        "wall_seconds": sum(r["wall_seconds"] for r in runs),
    }


def _run_row(seed: int, metrics: dict[str, Any], seconds: float) -> dict[str, Any]:
    return {
        "seed": seed,
        "test_macro_f1": metrics["test"]["macro_f1"],
        "val_macro_f1": metrics["val"]["macro_f1"],
        "examples": metrics["examples_seen"],
        "steps": metrics["steps"],
        "stop_reason": metrics.get("stop_reason"),
        "wall_seconds": round(seconds, 1),
    }


def optuna_part(tmp: Path, extra: list[str], trials: int, seeds: tuple[int, ...]) -> dict[str, Any]:
    out = tmp / "optuna"
    args = ["tune", "--quiet", "--retrain-best", "--retrain-seeds", *map(str, seeds), "--config", CONFIG]
    args += ["--backend", "optuna", "--trials", str(trials), "--out", str(out), *BASE, *extra, SPACE]
    args += ["coach.enabled=false", "train.seed=0", "tune.sampler=tpe", "tune.pruner=median"]
    args += [f"tune.startup_trials={min(STARTUP, trials)}", "tune.warmup_evaluations=1"]
    seconds = attncoach(args, tmp / "optuna.log")
    result = json.loads((out / "tune.json").read_text())
    retrained = result["retrained"]
    row = {
        "trials": trials,
        "counts": result["counts"],
        "examples": result["examples_seen"],
        "best": result["best"],
        "retrained": retrained,
        "median_test_macro_f1": retrained["median_test_macro_f1"],
        "trial_rows": result["trials"],
        "wall_seconds": round(seconds, 1),
    }
    print(
        f"optuna: {trials} trials ({result['counts']}), {row['examples']:,} examples; best retrained median test "
        f"macro-F1 {row['median_test_macro_f1']:.4f}"
    )
    return row


def pbt_part(tmp: Path, extra: list[str], examples: int, coach_state: bool, seed: int) -> dict[str, Any]:
    """PBT at ``examples`` training examples in all: POPULATION members of examples / POPULATION each."""
    batch = yaml.safe_load((ROOT / CONFIG).read_text())["train"]["batch_size"]  # not searched by PBT
    steps = max(1, examples // (POPULATION * batch))
    out = tmp / f"pbt-coach-state-{str(coach_state).lower()}-seed-{seed}"
    args = ["tune", "--quiet", "--config", CONFIG, "--backend", "ray", "--trials", str(POPULATION), "--out", str(out)]
    args += [*BASE, *extra, PBT_SPACE, "tune.scheduler=pbt", f"tune.pbt_coach_state={str(coach_state).lower()}"]
    args += [f"tune.trial_steps={steps}", "train.early_stopping_patience=null", f"train.seed={seed}"]
    seconds = attncoach(args, tmp / f"pbt-{coach_state}-{seed}.log")
    result = json.loads((out / "tune.json").read_text())
    best = result["best"]
    row = {
        "coach_state": coach_state,
        "seed": seed,
        "population": POPULATION,
        "member_steps": steps,
        # what the members trained (an exploit copies the donor's counters too, so tune.json's sum counts lineages)
        "examples": POPULATION * steps * batch,
        "examples_seen_sum_of_lineages": result["examples_seen"],
        "best": best,
        "best_test_macro_f1": best["test"],
        "trial_rows": result["trials"],
        "wall_seconds": round(seconds, 1),
    }
    print(
        f"pbt (coach state copied: {coach_state}), seed {seed}: best test macro-F1 {best['test']:.4f}, "
        f"{row['examples']:,} examples budgeted, {row['examples_seen_sum_of_lineages']:,} trained"
    )
    return row


def pbt_runs(saved: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The PBT runs of one arm in a results file; a file from before --pbt-seeds held one run, of seed 0."""
    if not saved:
        return []
    if "runs" in saved:
        return saved["runs"]
    return [{**saved, "seed": saved.get("seed", 0)}]


def pbt_arm(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One arm over its seeds: every run, and the median of the best members' test macro-F1."""
    runs = sorted(runs, key=lambda r: r["seed"])
    return {
        "runs": runs,
        "seeds": [r["seed"] for r in runs],
        "best_test_macro_f1": statistics.median(r["best_test_macro_f1"] for r in runs),
        "examples": statistics.median(r["examples"] for r in runs),
        "examples_seen_sum_of_lineages": statistics.median(r["examples_seen_sum_of_lineages"] for r in runs),
        "wall_seconds": round(sum(r["wall_seconds"] for r in runs), 1),
    }


def goals(result: dict[str, Any]) -> dict[str, Any]:
    verdict: dict[str, Any] = {}
    c, o = result.get("coached"), result.get("optuna")
    if c and o:
        gap = o["median_test_macro_f1"] - c["median_test_macro_f1"]
        share = c["examples"] / o["examples"]
        verdict["coach_vs_optuna"] = {
            "optuna_minus_coached_points": round(100 * gap, 2),
            "examples_share": round(share, 4),
            "met": gap <= 0.003 and share <= 1 / 8,
        }
    with_state, without = result.get("pbt_coach_state"), result.get("pbt_no_coach_state")
    if with_state and without:
        by_seed = {r["seed"]: r["best_test_macro_f1"] for r in without["runs"]}
        paired = [(r["best_test_macro_f1"], by_seed[r["seed"]]) for r in with_state["runs"] if r["seed"] in by_seed]
        verdict["pbt_coach_state"] = {
            "with": with_state["best_test_macro_f1"],
            "without": without["best_test_macro_f1"],
            "seeds": with_state["seeds"],
            "seeds_with_at_or_above": sum(1 for a, b in paired if a >= b),
            "met": with_state["best_test_macro_f1"] >= without["best_test_macro_f1"],
        }
    return verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny runs that only prove the script works")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="the parts to run")
    parser.add_argument("--trials", type=int, default=TRIALS, help=f"Optuna trials (default {TRIALS})")
    parser.add_argument("--pbt-seeds", type=int, nargs="+", default=[0], help="seeds of the PBT part (default 0)")
    args = parser.parse_args()
    extra = QUICK if args.quick else []
    trials, seeds = (2, (1,)) if args.quick else (args.trials, SEEDS)
    previous = RESULTS / "tune.json"
    keep = {} if args.quick or not previous.is_file() else json.loads(previous.read_text())
    result: dict[str, Any] = {
        k: v for k, v in keep.items() if k in ("coached", "optuna", "pbt_coach_state", "pbt_no_coach_state")
    }
    stamp = conditions()
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as name:
        tmp = Path(name)
        if "coached" in args.parts:
            result["coached"] = {**coached(tmp, extra, seeds), "conditions": stamp}
        if "optuna" in args.parts:
            result["optuna"] = {**optuna_part(tmp, extra, trials, seeds), "conditions": stamp}
        if "pbt" in args.parts:
            if "optuna" not in result:
                raise SystemExit("the pbt part trains Optuna's examples: run the optuna part first (or with it)")
            examples = result["optuna"]["examples"]
            arms = {True: "pbt_coach_state", False: "pbt_no_coach_state"}
            runs = {state: {r["seed"]: r for r in pbt_runs(result.get(key))} for state, key in arms.items()}
            for seed in args.pbt_seeds:
                for state in (True, False) if seed % 2 == 0 else (False, True):
                    runs[state][seed] = {**pbt_part(tmp, extra, examples, state, seed), "conditions": stamp}
                    result[arms[state]] = pbt_arm(list(runs[state].values()))
                    finish(result, args, extra, seeds, trials, stamp)  # saved after every run: each takes 10-20 min
    if "pbt" not in args.parts:  # the PBT loop saved after its last run
        finish(result, args, extra, seeds, trials, stamp)
    print(json.dumps(result["goals"], indent=2))


def finish(
    result: dict[str, Any],
    args: argparse.Namespace,
    extra: list[str],
    seeds: tuple[int, ...],
    trials: int,
    stamp: dict[str, Any],
) -> None:
    """Add the goals and settings to ``result`` and write the results file."""
    result["goals"] = goals(result)
    result["settings"] = {
        "config": CONFIG,
        "base": BASE,
        "space": SPACE,
        "pbt_space": PBT_SPACE,
        "quick": extra,
        "seeds": list(seeds),
        "trials": trials,
        "startup_trials": min(STARTUP, trials),
        "population": POPULATION,
        "pbt_seeds": result["pbt_coach_state"]["seeds"] if "pbt_coach_state" in result else None,
    }
    result["quick"] = args.quick
    result["conditions"] = stamp
    save("tune", result, quick=args.quick)


if __name__ == "__main__":
    main()
