"""Nothing lost: the main job at an earlier commit and at this one, interleaved (A B A B ...), seeds 0/1/2.

The earlier commit is checked out into a temporary git worktree and run with the same
interpreter and packages, its ``src`` first on ``PYTHONPATH``; this commit runs from this
checkout. Each command is the real CLI end to end, wall-clock measured around the process.
Goal: per seed, test macro-F1 within 0.3 point and wall-clock within 10 %.

    python bench/nothing_lost.py --before e363f6e           # seeds 0 1 2
    python bench/nothing_lost.py --before e363f6e --quick   # a few steps, proves the script works (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conditions import conditions, save, summary  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run(src: Path, config: str, seed: int, out: Path, extra: list[str]) -> tuple[float, dict]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, "-m", "attncoach", "train", "--quiet", "--config", config, f"train.seed={seed}",
           f"output_dir={out}", *extra]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"main job failed at {src} (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return seconds, json.loads((out / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the earlier commit")
    parser.add_argument("--config", default="configs/tweets-sentiment.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="a few steps only; proves the script works")
    args = parser.parse_args()
    extra = ["train.max_steps=20", "log.tensorboard=false"] if args.quick else []
    seeds = args.seeds[:1] if args.quick else args.seeds
    measured_under = conditions()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        worktree = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", "-f", str(worktree), args.before], cwd=ROOT,
                       check=True, capture_output=True)  # fmt: skip
        try:
            for seed in seeds:
                row = {"seed": seed}
                for side, src in (("before", worktree / "src"), ("after", ROOT / "src")):
                    seconds, m = run(src, args.config, seed, Path(tmp) / f"{side}-{seed}", extra)
                    row[side] = {"wall_seconds": round(seconds, 1), "train_seconds": m["train_seconds"],
                                 "test_macro_f1": m["test"]["macro_f1"], "test_accuracy": m["test"]["accuracy"],
                                 "steps": m["steps"], "examples_seen": m["examples_seen"]}  # fmt: skip
                    print(f"seed {seed} {side}: {row[side]}", flush=True)
                row["f1_points"] = round(100 * (row["after"]["test_macro_f1"] - row["before"]["test_macro_f1"]), 3)
                row["wall_ratio"] = round(row["after"]["wall_seconds"] / row["before"]["wall_seconds"], 3)
                rows.append(row)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, capture_output=True)
    result = {
        "conditions": measured_under,
        "before": args.before,
        "config": args.config,
        "settings": "both sides: the same config, seeds, interpreter, packages and machine; only the source differs",
        "rows": rows,
        "f1_points": summary([r["f1_points"] for r in rows]),
        "wall_ratio": summary([r["wall_ratio"] for r in rows]),
        "goal": "per seed |test macro-F1 difference| <= 0.3 point and wall-clock ratio within 10 %",
        "met": all(abs(r["f1_points"]) <= 0.3 and abs(r["wall_ratio"] - 1) <= 0.10 for r in rows),
    }
    print(json.dumps({k: result[k] for k in ("f1_points", "wall_ratio", "met")}, indent=2))
    save("nothing_lost", result, quick=args.quick)


if __name__ == "__main__":
    main()
