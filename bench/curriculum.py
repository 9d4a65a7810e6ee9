"""Curriculum schedulers and data pruning against uniform sampling, on the main job's corpus.

The main job's data and scratch model (configs/tweets-sentiment.yaml) without the elastic
supernet and the coach, so that only the order of the examples differs. For each seed, in
one run, interleaved: every scheduler arm at the same budget of examples, then the pruning
arms. Each run is the real CLI (``attncoach train``) in a subprocess.

Figures per arm, medians over seeds (min-max beside):

- cost to reach 95 % of the uniform run's final val macro-F1 (same seed), counted as
  examples trained on, as forward passes (those + examples scored: the probe, self-paced
  measuring) and as training seconds (evaluations excluded, probe and scoring included),
  each divided by uniform's;
- final test macro-F1 at the equal budget, minus uniform's;
- pruning: test macro-F1 when training on 70 % of the training set, kept by each scorer, as
  many epochs as the full run (so 0.7 of its examples), against the full data and against a
  random 70 %.

    python bench/curriculum.py                # seeds 0 1 2
    python bench/curriculum.py --seeds 0      # one seed
    python bench/curriculum.py --quick        # a tiny budget, proves the script works (CI)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conditions import conditions, save, summary  # noqa: E402

CONFIG = "configs/tweets-sentiment.yaml"
BASE = ["elastic.enabled=false", "coach.enabled=false", "train.early_stopping_patience=null", "log.tensorboard=false"]
SCHEDULER_ARMS = {
    "uniform": ["curriculum.scheduler=uniform"],
    "leitner": ["curriculum.scheduler=leitner"],
    "competence_sqrt": ["curriculum.scheduler=competence", "curriculum.scorer=rarity", "curriculum.pacing=sqrt"],
    "competence_linear": ["curriculum.scheduler=competence", "curriculum.scorer=rarity", "curriculum.pacing=linear"],
    "competence_step": ["curriculum.scheduler=competence", "curriculum.scorer=rarity", "curriculum.pacing=step"],
    "anti": ["curriculum.scheduler=anti", "curriculum.scorer=rarity", "curriculum.pacing=sqrt"],
    "self_paced": ["curriculum.scheduler=self_paced", "curriculum.pacing=sqrt"],
}
PRUNE_SCORERS = ("el2n", "forgetting", "loss", "length", "random")


def train(overrides: list[str], out: Path) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "attncoach",
        "train",
        "--quiet",
        "--config",
        CONFIG,
        f"output_dir={out}",
        *BASE,
        *overrides,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"run failed (exit {proc.returncode}): {' '.join(overrides)}\n{proc.stderr.strip()[-800:]}")
    return json.loads((out / "metrics.json").read_text())


def row_of(arm: str, seed: int, metrics: dict) -> dict:
    return {
        "arm": arm,
        "seed": seed,
        "test_macro_f1": metrics["test"]["macro_f1"],
        "final_val_macro_f1": metrics["history"][-1]["val_macro_f1"],
        "examples_seen": metrics["examples_seen"],
        "examples_scored": metrics["examples_scored"],
        "train_seconds": metrics["train_seconds"],
        "eval_seconds": metrics["eval_seconds"],
        "curriculum_seconds": metrics["curriculum_seconds"],
        "training_examples": metrics["curriculum"]["training_examples"],
        # per evaluation: examples trained on, examples scored (probe, measuring), training seconds, val F1
        "curve": [
            [h["examples_seen"], h.get("examples_scored", 0), round(h["seconds"], 2), h["val_macro_f1"]]
            for h in metrics["history"]
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=float, default=1.5, help="budget of every scheduler arm, in epochs")
    parser.add_argument("--eval-every", type=int, default=58, help="steps between val evaluations")
    parser.add_argument(
        "--arms",
        nargs="+",
        choices=list(SCHEDULER_ARMS),
        default=["uniform", "leitner", "competence_sqrt", "competence_linear", "anti", "self_paced"],
    )
    parser.add_argument(
        "--prune",
        nargs="*",
        default=["el2n", "forgetting", "random"],
        metavar="SCORER[:KEEP[:SKIP]]",
        help="70 %% pruning arms: a scorer, optionally the end kept (hardest, the default, or "
        "easiest) and the fraction of the very hardest skipped first, e.g. el2n:hardest:0.1; "
        "none: skip pruning",
    )
    parser.add_argument("--name", default="curriculum", help="results file name (bench/results/NAME.json)")
    parser.add_argument("--quick", action="store_true", help="a tiny budget; proves the script works")
    args = parser.parse_args()
    budget = [f"train.epochs={args.epochs}", f"train.eval_every={args.eval_every}"]
    if args.quick:
        args.seeds = args.seeds[:1]
        budget = [
            "train.max_steps=24",
            "train.eval_every=6",
            "data.vocab_size=2000",
            "model.dim=32",
            "model.ffn_dim=64",
            "curriculum.probe_epochs=0.02",
        ]
    if "uniform" not in args.arms:
        args.arms.insert(0, "uniform")
    for spec in args.prune:
        scorer, keep, skip = (spec.split(":") + ["", ""])[:3]
        if scorer not in PRUNE_SCORERS or keep not in ("", "hardest", "easiest"):
            parser.error(f"--prune {spec}: SCORER[:hardest|easiest[:SKIP_HARDEST]], scorers {', '.join(PRUNE_SCORERS)}")
    measured_under = conditions()
    rows: list[dict] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for arm in args.arms:
                metrics = train([*SCHEDULER_ARMS[arm], *budget, f"train.seed={seed}"], Path(tmp) / f"{arm}-{seed}")
                rows.append(row_of(arm, seed, metrics))
                print(
                    f"seed {seed} {arm:<18} test macro-F1 {metrics['test']['macro_f1']:.4f}  "
                    f"{metrics['train_seconds']:.0f} s",
                    flush=True,
                )
            for spec in args.prune:
                scorer, keep, skip = (spec.split(":") + ["", ""])[:3]
                arm = f"prune70_{scorer}" + (f"_{keep}" if keep else "") + (f"_skip{skip}" if skip else "")
                metrics = train(
                    [
                        "curriculum.keep_fraction=0.7",
                        f"curriculum.prune_by={scorer}",
                        f"curriculum.keep={keep or 'hardest'}",
                        f"curriculum.skip_hardest={skip or 0}",
                        *budget,
                        f"train.seed={seed}",
                    ],
                    Path(tmp) / f"{arm}-{seed}",
                )
                rows.append(row_of(arm, seed, metrics))
                print(
                    f"seed {seed} {arm:<18} test macro-F1 {metrics['test']['macro_f1']:.4f}  "
                    f"{metrics['train_seconds']:.0f} s",
                    flush=True,
                )
    table = summarise(rows, args)
    for line in table["lines"]:
        print(line)
    save(
        args.name,
        {
            "quick": args.quick,
            "conditions": measured_under,
            "budget": budget,
            "base_overrides": BASE,
            "config": CONFIG,
            "wall_seconds": round(time.perf_counter() - started, 1),
            "summary": table["summary"],
            "runs": rows,
        },
        quick=args.quick,
    )


def summarise(rows: list[dict], args: argparse.Namespace) -> dict:
    uniform = {r["seed"]: r for r in rows if r["arm"] == "uniform"}
    per_arm: dict[str, dict] = {}
    for arm in dict.fromkeys(r["arm"] for r in rows):
        mine = [r for r in rows if r["arm"] == arm]
        examples, passes, seconds, delta, vs_random = [], [], [], [], []
        for r in mine:
            base = uniform[r["seed"]]
            target = 0.95 * base["final_val_macro_f1"]
            ours, theirs = crossing_of(r, target), crossing_of(base, target)
            r["target_val_macro_f1"] = round(target, 5)
            r["crossing"] = None if ours is None else dict(zip(("examples_seen", "examples_scored", "seconds"), ours))
            if ours is not None and theirs is not None:
                examples.append(ours[0] / theirs[0])
                passes.append((ours[0] + ours[1]) / (theirs[0] + theirs[1]))
                seconds.append(ours[2] / theirs[2] if theirs[2] > 0 else float("nan"))
            else:
                examples.append(float("inf"))
                passes.append(float("inf"))
                seconds.append(float("inf"))
            delta.append(100 * (r["test_macro_f1"] - base["test_macro_f1"]))
            random_row = next((x for x in rows if x["arm"] == "prune70_random" and x["seed"] == r["seed"]), None)
            if arm.startswith("prune70_") and random_row is not None:
                vs_random.append(100 * (r["test_macro_f1"] - random_row["test_macro_f1"]))
        per_arm[arm] = {
            "examples_to_95pct_vs_uniform": summary(examples),
            "forward_passes_to_95pct_vs_uniform": summary(passes),
            "seconds_to_95pct_vs_uniform": summary(seconds),
            "test_macro_f1": summary([r["test_macro_f1"] for r in mine]),
            "test_macro_f1_minus_uniform_points": summary(delta),
            "examples_seen": summary([r["examples_seen"] for r in mine]),
            "examples_scored": summary([r["examples_scored"] for r in mine]),
        }
        if vs_random:
            per_arm[arm]["test_macro_f1_minus_random_70pct_points"] = summary(vs_random)
    lines = [
        "to 95 % of uniform's final val macro-F1, x uniform (median, min-max over seeds); test macro-F1 at the end",
        f"{'arm':<19} {'examples':<18} {'+ scored':<18} {'seconds':<18} {'test macro-F1':<24} "
        f"{'vs uniform (pt)':<22} vs random 70% (pt)",
    ]
    for arm, s in per_arm.items():
        cells = [
            fmt(s[k])
            for k in (
                "examples_to_95pct_vs_uniform",
                "forward_passes_to_95pct_vs_uniform",
                "seconds_to_95pct_vs_uniform",
            )
        ]
        extra = s.get("test_macro_f1_minus_random_70pct_points")
        lines.append(
            f"{arm:<19} {cells[0]:<18} {cells[1]:<18} {cells[2]:<18} {fmt(s['test_macro_f1'], 4):<24} "
            f"{fmt(s['test_macro_f1_minus_uniform_points'], 2):<22} {fmt(extra, 2) if extra else ''}"
        )
    return {"summary": per_arm, "lines": lines}


def crossing_of(row: dict, target: float) -> tuple[int, int, float] | None:
    """Examples trained, examples scored and training seconds at the first evaluation reaching ``target``."""
    for seen, scored, seconds, f1 in row["curve"]:
        if f1 >= target:
            return seen, scored, seconds
    return None


def fmt(s: dict, digits: int = 2) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


if __name__ == "__main__":
    main()
