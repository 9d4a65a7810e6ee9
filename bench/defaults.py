"""The library's defaults: a data-only config with a pretrained backbone against the tuned config.

A new user writes only where the data is and which backbone to start from; everything else
(LR, head LR, layer decay, warmup, epochs, the coach on) comes from attncoach's defaults.
Per corpus, in one run and on the same split, each through the real CLI:

- **data-only**: a YAML file holding ``data`` (the corpus) and ``model.backbone: minilm``,
  nothing else;
- **tuned**: the shipped MiniLM config of that corpus (``configs/tweets-minilm.yaml``,
  ``configs/banking77-minilm.yaml``), which sets LR, head LR, layer decay, warmup, epochs and
  turns the coach off.

The corpus is named with ``data.builtin`` rather than ``data.path``: a built-in corpus keeps
its official split (banking77) or attncoach's seeded split (tweets), so both sides are scored
on the very same test examples; ``data.path`` to the same rows would set the same data keys.
Goal: the data-only run's test macro-F1 (and accuracy) within 1 point of the tuned config's.

    python bench/defaults.py                          # both corpora (tweets: about 50 minutes)
    python bench/defaults.py --corpora banking77      # banking77 only (about 10 minutes)
    python bench/defaults.py --quick                  # a few steps of each: proves the script works
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conditions import conditions, save  # noqa: E402
from main_job import run_figures, run_main_job  # noqa: E402

CORPORA = {
    "tweets-sentiment": "configs/tweets-minilm.yaml",
    "banking77": "configs/banking77-minilm.yaml",
}
WITHIN_POINTS = 1.0


def row(seconds: float, metrics: dict) -> dict:
    return {**run_figures(seconds, metrics), "epochs": metrics["epochs"], "coach": "coach" in metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", nargs="+", choices=sorted(CORPORA), default=list(CORPORA))
    parser.add_argument("--quick", action="store_true", help="a few steps only; proves the script works")
    args = parser.parse_args()
    extra = ["train.max_steps=6", "train.eval_every=3", "log.tensorboard=false"] if args.quick else []
    measured_under = conditions()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for corpus in args.corpora:
            data_only = tmp / f"{corpus}-data-only.yaml"
            data_only.write_text(yaml.safe_dump({"data": {"builtin": corpus}, "model": {"backbone": "minilm"}}))
            sides = {}
            for name, config in (("data_only", str(data_only)), ("tuned", CORPORA[corpus])):
                seconds, metrics = run_main_job(config, 0, tmp / f"{corpus}-{name}", extra)
                sides[name] = {"config": config if name == "tuned" else data_only.read_text(), **row(seconds, metrics)}
                print(
                    f"{corpus} {name}: test macro-F1 {metrics['test']['macro_f1']:.4f}, accuracy "
                    f"{metrics['test']['accuracy']:.4f}, {metrics['steps']} steps, {seconds:.0f} s wall",
                    flush=True,
                )
            gap = {k: 100 * (sides["data_only"][k] - sides["tuned"][k]) for k in ("test_macro_f1", "test_accuracy")}
            sides["data_only_minus_tuned_points"] = gap
            sides["within_1_point"] = all(v >= -WITHIN_POINTS for v in gap.values())
            results[corpus] = sides
            print(f"{corpus}: data-only - tuned = {gap} points", flush=True)
    result = {
        "benchmark": "defaults",
        "conditions": measured_under,
        "quick": args.quick,
        "seed": 0,
        "corpora": results,
        "goal": f"data-only within {WITHIN_POINTS:g} point of the tuned config (test macro-F1 and accuracy)",
        "met": all(r["within_1_point"] for r in results.values()),
    }
    save("defaults", result, quick=args.quick)


if __name__ == "__main__":
    main()
