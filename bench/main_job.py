"""The main job: wall-clock and test macro-F1 of `attncoach train --config configs/tweets-sentiment.yaml`.

For each seed, in one run: the real CLI command end to end (start-up, data, tokenizer,
training, evaluation, saving; wall-clock measured around the whole process), then a TF-IDF
(word 1-2 grams) + logistic-regression baseline on the very same train/val/test split.

    python bench/main_job.py                 # seeds 0 1 2
    python bench/main_job.py --seeds 0       # one seed
    python bench/main_job.py --quick         # a few steps, proves the script works (CI)
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
from attncoach.config import load_config  # noqa: E402
from attncoach.data.sources import read_examples  # noqa: E402
from attncoach.data.splits import dedupe, split_examples  # noqa: E402
from conditions import conditions, save, summary  # noqa: E402


def run_main_job(config: str, seed: int, out: Path, extra: list[str]) -> tuple[float, dict]:
    cmd = [
        sys.executable,
        "-m",
        "attncoach",
        "train",
        "--quiet",
        "--config",
        config,
        f"train.seed={seed}",
        f"output_dir={out}",
        *extra,
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"main job failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return seconds, json.loads((out / "metrics.json").read_text())


def run_figures(seconds: float, metrics: dict) -> dict:
    """The figures every CLI-run row reports: wall-clock, training time, test scores, steps, how it ended."""
    return {
        "wall_seconds": round(seconds, 1),
        "train_seconds": metrics["train_seconds"],
        "test_macro_f1": metrics["test"]["macro_f1"],
        "test_accuracy": metrics["test"]["accuracy"],
        "steps": metrics["steps"],
        "stopped_early": metrics["stopped_early"],
        "stop_reason": metrics["stop_reason"],
    }


def tfidf_baseline(config: str, seed: int) -> dict:
    """TF-IDF + logistic regression on the same split the run used."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    cfg = load_config(config, [f"train.seed={seed}"])
    examples, _ = dedupe(read_examples(cfg.data))
    splits = split_examples(examples, cfg.data.val_fraction, cfg.data.test_fraction, seed, cfg.data.label_column)
    start = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x_train = vectorizer.fit_transform([e.text for e in splits["train"]])
    model = LogisticRegression(C=3.0, max_iter=2000).fit(x_train, [e.label for e in splits["train"]])
    predicted = model.predict(vectorizer.transform([e.text for e in splits["test"]]))
    gold = [e.label for e in splits["test"]]
    return {
        "macro_f1": float(f1_score(gold, predicted, average="macro")),
        "accuracy": float(accuracy_score(gold, predicted)),
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/tweets-sentiment.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="a few steps only; proves the script works")
    args = parser.parse_args()
    extra = ["train.max_steps=20", "log.tensorboard=false"] if args.quick else []
    if args.quick:
        args.seeds = args.seeds[:1]
    measured_under = conditions()  # at the start: the code that runs is the code recorded
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            seconds, metrics = run_main_job(args.config, seed, Path(tmp) / f"seed{seed}", extra)
            baseline = tfidf_baseline(args.config, seed)
            row = {
                "seed": seed,
                "wall_seconds": round(seconds, 1),
                "train_seconds": metrics["train_seconds"],
                "test_macro_f1": metrics["test"]["macro_f1"],
                "test_accuracy": metrics["test"]["accuracy"],
                "val_macro_f1": metrics["val"]["macro_f1"],
                "steps": metrics["steps"],
                "examples_seen": metrics["examples_seen"],
                "stopped_early": metrics["stopped_early"],
                "tfidf_lr_test_macro_f1": baseline["macro_f1"],
                "tfidf_lr_test_accuracy": baseline["accuracy"],
                "tfidf_lr_seconds": round(baseline["seconds"], 1),
            }
            rows.append(row)
            print(
                f"seed {seed}: {seconds:.0f} s wall, test macro-F1 {row['test_macro_f1']:.4f} "
                f"(TF-IDF+LR {baseline['macro_f1']:.4f})"
            )
    result = {
        "benchmark": "main_job",
        "conditions": measured_under,
        "config": args.config,
        "quick": args.quick,
        "runs": rows,
        "wall_seconds": summary([r["wall_seconds"] for r in rows]),
        "test_macro_f1": summary([r["test_macro_f1"] for r in rows]),
        "tfidf_lr_test_macro_f1": summary([r["tfidf_lr_test_macro_f1"] for r in rows]),
        "goals": {"wall_seconds_max": 180, "test_macro_f1_min": 0.72},
    }
    print(
        f"main job: wall {result['wall_seconds']['median']:.0f} s (max {result['wall_seconds']['max']:.0f}), "
        f"test macro-F1 {result['test_macro_f1']['median']:.4f} (min {result['test_macro_f1']['min']:.4f}); "
        f"TF-IDF+LR {result['tfidf_lr_test_macro_f1']['median']:.4f}"
    )
    save("main_job", result, quick=args.quick)


if __name__ == "__main__":
    main()
