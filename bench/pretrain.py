"""Domain pretraining: the main job fine-tuned from scratch against the same after masked-language modelling.

For each seed (0, 1, 2), through the CLI as a user would:

- **mlm**: ``attncoach pretrain --config configs/tweets-pretrain.yaml train.seed=S``: the main job's
  encoder (same tokenizer settings, dim, layers, heads, FFN) trained by masked-language modelling on
  the tweets' own texts for the config's 5,200 steps of 64 texts (273-282 s on 2 cores at b0cdc7a;
  its seconds are reported). The corpus is split as the main job splits it with the same seed, so the
  encoder reads the training tweets only, never the val or test tweets the classifiers are scored on.
- **all labels**: the main job as shipped (``configs/tweets-sentiment.yaml``: supernet, coach, 3
  epochs, LR 1e-3) with ``train.seed=S``, from scratch and with ``model.backbone=<the mlm run>``
  plus ``MLM_TRAIN`` (``--mlm-train``; by default the encoder at LR 3e-4, as
  ``configs/tweets-pretrain.yaml`` advises): the same config and steps on both sides (the
  pretrained side's head and layer-LR defaults are those of any pretrained backbone: head LR
  1e-3, layer decay 0.9).
- **1,000 labels**: 1,000 training tweets drawn at random (seed S) from the scratch run's training
  split, val and test unchanged (the val and test rows come from ``attncoach clean``, which rebuilds
  the run's split); the same config with ``train.max_steps`` 600 (19 passes over the 1,000), from
  scratch (its tokenizer learns from the 1,000 texts) and from the mlm backbone (its tokenizer
  learnt from the unlabelled training texts, which is what pretraining buys).

Reported per seed and as medians: test macro-F1 of each side and the gain in points, steps and
examples of each fine-tuning, the pretraining's steps and seconds. Goals (issue 18): a median gain of
at least 1.5 points with all labels and at least 5 points with 1,000 labels.

    python bench/pretrain.py              # seeds 0 1 2: 29 minutes on 2 cores at b0cdc7a
    python bench/pretrain.py --quick      # tiny runs that only prove the script works
    python bench/pretrain.py --seeds 3 --pretrain train.max_steps=4000 --mlm-train train.lr=1.0e-3 --name pretrain_4000_lr_1e-3
        # a variant: overrides of the mlm side's fine-tuning (--pretrain: of the pretraining), its own file
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_run import (  # noqa: E402
    add_overrides,
    attncoach,
    file_data,
    held_out_rows,
    metrics,
    run_row,
    seeds_and_quick,
    training_rows,
    write_split_csv,
)
from conditions import conditions, save  # noqa: E402

CONFIG = "configs/tweets-sentiment.yaml"
PRETRAIN_CONFIG = "configs/tweets-pretrain.yaml"
BASE = ["log.tensorboard=false", "log.report=false"]
FEW_LABELS, FEW_STEPS = 1000, 600
# the encoder LR for fine-tuning a pretrained backbone (configs/tweets-pretrain.yaml says so); scratch keeps 1e-3
MLM_TRAIN = ["train.lr=3.0e-4"]
GOAL_ALL, GOAL_FEW = 1.5, 5.0  # points of test macro-F1
QUICK_TRAIN = ["train.max_steps=30", "train.eval_every=10", "data.max_length=32", "elastic.enabled=false"]
QUICK_PRETRAIN = ["train.max_steps=30", "train.eval_every=10", "data.max_length=32"]


def one_seed(seed: int, tmp: Path, quick: bool, pretrain_extra: list[str], mlm_extra: list[str]) -> dict[str, Any]:
    train_extra = [*BASE, f"train.seed={seed}", *(QUICK_TRAIN if quick else [])]

    mlm = tmp / f"mlm-{seed}"
    pre_args = ["pretrain", "--quiet", "--config", PRETRAIN_CONFIG, *BASE, f"train.seed={seed}", f"output_dir={mlm}"]
    pre_seconds = attncoach([*pre_args, *pretrain_extra, *(QUICK_PRETRAIN if quick else [])], tmp / f"mlm-{seed}.log")
    pre = metrics(mlm)
    pretraining = {
        "steps": pre["steps"],
        "train_seconds": pre["train_seconds"],
        "wall_seconds": round(pre_seconds, 1),
        "val": {k: v for k, v in pre["val"].items() if isinstance(v, (int, float))},
    }
    print(f"seed {seed}: pretrained {pre['steps']} steps in {pre['train_seconds']:.0f} s")

    def fine_tune(name: str, extra: list[str]) -> dict[str, Any]:
        run = tmp / f"{name}-{seed}"
        seconds = attncoach(
            ["train", "--quiet", "--config", CONFIG, *train_extra, *extra, f"output_dir={run}"],
            tmp / f"{name}-{seed}.log",
        )
        row = run_row(run, seconds)
        print(f"seed {seed}, {name}: test macro-F1 {row['test_macro_f1']:.4f} ({row['steps']} steps)")
        return row

    backbone = [f"model.backbone={mlm}", *mlm_extra]
    rows = {"scratch_all": fine_tune("scratch-all", []), "mlm_all": fine_tune("mlm-all", backbone)}

    train = [(r["text"], r["label"]) for r in training_rows(tmp / f"scratch-all-{seed}")]
    few = random.Random(seed).sample(train, min(FEW_LABELS, len(train)))
    held_out = held_out_rows(tmp / f"scratch-all-{seed}", tmp)
    data = write_split_csv(tmp / f"few-{seed}.csv", {"train": few, **held_out})
    few_args = [*file_data(data), *([] if quick else [f"train.max_steps={FEW_STEPS}"])]
    rows["scratch_few"] = fine_tune("scratch-few", few_args)
    rows["mlm_few"] = fine_tune("mlm-few", [*few_args, *backbone])
    return {
        "seed": seed,
        "pretraining": pretraining,
        "rows": rows,
        "gain_all_points": round(100 * (rows["mlm_all"]["test_macro_f1"] - rows["scratch_all"]["test_macro_f1"]), 2),
        "gain_few_points": round(100 * (rows["mlm_few"]["test_macro_f1"] - rows["scratch_few"]["test_macro_f1"]), 2),
        "few_labels": len(few),
    }


def options(parser: argparse.ArgumentParser) -> None:
    """The overrides of this benchmark, beside ``--seeds`` and ``--quick``."""
    add_overrides(parser, "--pretrain", [], "the pretraining")
    add_overrides(parser, "--mlm-train", MLM_TRAIN, "the fine-tuning from the mlm backbone only")
    parser.add_argument("--name", default="pretrain", help="results file bench/results/NAME.json")


def main() -> None:
    args, seeds = seeds_and_quick(__doc__, options)
    measured_under = conditions()
    with tempfile.TemporaryDirectory(prefix="bench-pretrain-") as name:
        per_seed = [one_seed(seed, Path(name), args.quick, args.pretrain, args.mlm_train) for seed in seeds]
    medians = {
        side: statistics.median(s["rows"][side]["test_macro_f1"] for s in per_seed)
        for side in ("scratch_all", "mlm_all", "scratch_few", "mlm_few")
    }
    gain_all = statistics.median(s["gain_all_points"] for s in per_seed)
    gain_few = statistics.median(s["gain_few_points"] for s in per_seed)
    result = {
        "benchmark": "pretrain",
        "conditions": measured_under,
        "quick": args.quick,
        "settings": {
            "config": CONFIG,
            "pretrain_config": PRETRAIN_CONFIG,
            "base": BASE,
            "few_labels": FEW_LABELS,
            "few_steps": FEW_STEPS,
            "seeds": seeds,
            "pretrain_overrides": args.pretrain,
            "mlm_fine_tune_overrides": args.mlm_train,
            "quick": (QUICK_TRAIN, QUICK_PRETRAIN) if args.quick else None,
        },
        "per_seed": per_seed,
        "median_test_macro_f1": medians,
        "median_gain_points": {"all": gain_all, "few": gain_few},
        "median_pretraining_seconds": statistics.median(s["pretraining"]["train_seconds"] for s in per_seed),
        "goals": {
            "all_labels_min_points": GOAL_ALL,
            "few_labels_min_points": GOAL_FEW,
            "all_met": gain_all >= GOAL_ALL,
            "few_met": gain_few >= GOAL_FEW,
        },
    }
    save(args.name, result, quick=args.quick)
    print(
        f"median test macro-F1: all labels {medians['scratch_all']:.4f} -> {medians['mlm_all']:.4f} "
        f"({gain_all:+.2f} points); {FEW_LABELS:,} labels {medians['scratch_few']:.4f} -> "
        f"{medians['mlm_few']:.4f} ({gain_few:+.2f} points)"
    )


if __name__ == "__main__":
    main()
