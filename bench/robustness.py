"""Robust training against plain training on the tweets: noise, attack, calibration and cost.

For each backbone (the main job's scratch model and MiniLM) and each seed, interleaved:
plain training (the shipped config) and robust training (the same config plus adversarial
training in embedding space and character-noise augmentation), each then measured with
`attncoach robustness RUN --json` (clean test, character noise on 10 % and 20 % of words, word
dropout, the greedy word-importance attack, ECE raw and after temperature scaling). Then the
training-time multiplier of each method (fgm, pgd, freelb, augmentation, fgm + augmentation)
against plain training, measured in the same script on the main job's config for a fixed
number of steps (coach off, so every arm does the same steps), interleaved and repeated.

    python bench/robustness.py                       # seeds 0 1 2, scratch and MiniLM (about 50 minutes)
    python bench/robustness.py --backbones scratch   # the main job's model only
    python bench/robustness.py --quick               # a few steps, proves the script works (CI)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conditions import conditions, save, summary  # noqa: E402

CONFIGS = {"scratch": "configs/tweets-sentiment.yaml", "minilm": "configs/tweets-minilm.yaml"}
# MiniLM trains 1 epoch (932 steps, about 7 minutes) in its shipped config; both arms here train the
# same shorter budget so that three seeds of both arms fit the benchmark's time
MINILM_BUDGET = ["train.max_steps=300", "train.eval_every=100"]
# chosen from four seed-0 trials of the main job (bench/README.md): FGM alone, noise alone, and two mixes
ROBUST = [
    "robust.method=fgm",
    "robust.epsilon=0.5",
    "augment.p=0.3",
    "augment.char_noise=0.2",
]
ARMS = {
    "plain": [],
    "fgm": ["robust.method=fgm", "robust.start_step=0"],
    "pgd": ["robust.method=pgd", "robust.steps=2", "robust.start_step=0"],
    "freelb": ["robust.method=freelb", "robust.steps=2", "robust.start_step=0"],
    "augment": ["augment.p=0.3", "augment.char_noise=0.2"],
    "fgm+augment": [*ROBUST, "robust.start_step=0"],
}
ATTACK = ["--attack-examples", "300", "--query-budget", "50"]


def attncoach(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "attncoach", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(
            f"attncoach {' '.join(args[:3])} failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}"
        )
    return proc


def train(config: str, out: Path, extra: list[str]) -> tuple[float, dict]:
    start = time.perf_counter()
    attncoach("train", "--quiet", "--config", config, f"output_dir={out}", "log.tensorboard=false", *extra)
    return time.perf_counter() - start, json.loads((out / "metrics.json").read_text())


def robustness(run: Path, seed: int, quick: bool) -> dict:
    attack = ["--attack-examples", "20", "--query-budget", "20"] if quick else ATTACK
    proc = attncoach("robustness", str(run), "--quiet", "--json", "--no-textattack", "--seed", str(seed), *attack)
    return json.loads(proc.stdout)


def figures(wall: float, metrics: dict, report: dict) -> dict:
    """The row of one trained run: its cost, its clean and noisy scores, the attack, calibration."""
    by_name = {c["name"]: c for c in report["conditions"]}
    clean, noisy = by_name["clean"], by_name["char_noise_20"]
    attack = next(a for a in report["attacks"] if a["name"] == "greedy_word_importance")
    return {
        "wall_seconds": round(wall, 1),
        "train_seconds": metrics["train_seconds"],
        "steps": metrics["steps"],
        "clean_macro_f1": clean["macro_f1"],
        "clean_accuracy": clean["accuracy"],
        "char10_macro_f1": by_name["char_noise_10"]["macro_f1"],
        "char20_macro_f1": noisy["macro_f1"],
        "word_dropout_macro_f1": by_name["word_dropout_10"]["macro_f1"],
        "drop_char20_points": round(100 * (clean["macro_f1"] - noisy["macro_f1"]), 2),
        "attack_success_rate": attack["success_rate"],
        "attack_queries_per_success": attack["mean_queries_per_success"],
        "attack_examples": attack["attacked"],
        "ece_clean_raw": clean["ece"],
        "ece_clean_calibrated": clean["ece_calibrated"],
        "ece_char20_raw": noisy["ece"],
        "ece_char20_calibrated": noisy["ece_calibrated"],
        "temperature": report["temperature"],
        "attacks_run": {a["name"]: a["ran"] for a in report["attacks"]},
    }


def quality(backbones: list[str], seeds: list[int], quick: bool, tmp: Path) -> dict:
    """Plain and robust training, seed by seed (A B A B), each measured by `attncoach robustness`."""
    out: dict = {}
    for backbone in backbones:
        budget = MINILM_BUDGET if backbone == "minilm" else []
        if quick:
            budget = ["train.max_steps=20", "train.eval_every=10"]
        rows = {"plain": [], "robust": []}
        for seed in seeds:
            for arm, extra in (("plain", []), ("robust", ROBUST)):
                run = tmp / f"{backbone}-{arm}-{seed}"
                wall, metrics = train(CONFIGS[backbone], run, [f"train.seed={seed}", *budget, *extra])
                row = {"seed": seed, **figures(wall, metrics, robustness(run, 100 + seed, quick))}
                rows[arm].append(row)
                print(
                    f"{backbone} {arm} seed {seed}: clean {row['clean_macro_f1']:.4f} char20 {row['char20_macro_f1']:.4f} "
                    f"(drop {row['drop_char20_points']:.2f}) attack success {row['attack_success_rate']:.3f} "
                    f"ECE {row['ece_clean_raw']:.4f} -> {row['ece_clean_calibrated']} ({wall:.0f} s)",
                    flush=True,
                )
        out[backbone] = {
            "config": CONFIGS[backbone],
            "settings": {"both": budget, "robust": ROBUST, "attack": ATTACK},
            "rows": rows,
            "summary": _compare(rows["plain"], rows["robust"]),
        }
    return out


def _compare(plain: list[dict], robust: list[dict]) -> dict:
    """Per-seed differences (robust against plain, same seed), summarised, with each goal."""
    drop_cut = [p["drop_char20_points"] - r["drop_char20_points"] for p, r in zip(plain, robust)]
    clean_loss = [100 * (p["clean_macro_f1"] - r["clean_macro_f1"]) for p, r in zip(plain, robust)]
    asr_cut = [100 * (p["attack_success_rate"] - r["attack_success_rate"]) for p, r in zip(plain, robust)]
    cost = [r["wall_seconds"] / p["wall_seconds"] for p, r in zip(plain, robust)]
    summary_ = {
        "drop_cut_points": summary(drop_cut),
        "clean_loss_points": summary(clean_loss),
        "attack_success_cut_points": summary(asr_cut),
        "wall_multiplier": summary(cost),
    }
    for side, rows in (("plain", plain), ("robust", robust)):
        for key in ("ece_clean_calibrated", "ece_clean_raw", "ece_char20_raw", "ece_char20_calibrated"):
            values = [r[key] for r in rows if r[key] is not None]
            if values:
                summary_[f"{side}_{key}"] = summary(values)
    med = lambda k: summary_[k]["median"]  # noqa: E731
    calibrated = [r for r in plain + robust if r["ece_clean_calibrated"] is not None]
    summary_["goals"] = {
        "drop_cut_ge_5_points": med("drop_cut_points") >= 5,
        "clean_loss_le_1_point": med("clean_loss_points") <= 1,
        "attack_success_cut_ge_10_points": med("attack_success_cut_points") >= 10,
        "ece_calibrated_clean_le_0.03": bool(calibrated) and all(r["ece_clean_calibrated"] <= 0.03 for r in calibrated),
        "ece_calibrated_noisy_below_raw": bool(calibrated)
        and all(r["ece_char20_calibrated"] < r["ece_char20_raw"] for r in calibrated),
    }
    return summary_


def cost(steps: int, repeats: int, tmp: Path) -> dict:
    """Seconds per training step of each arm on the main job's config (coach off: the same steps in every arm)."""
    fixed = [f"train.max_steps={steps}", f"train.eval_every={steps}", "coach.enabled=false", "log.report=false"]
    seconds: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for rep in range(repeats + 1):  # the first round warms up (file cache, tokenizer) and is not kept
        for arm, extra in ARMS.items():
            run = tmp / f"cost-{arm}-{rep}"
            _, metrics = train(CONFIGS["scratch"], run, [*fixed, *extra])
            per_step = (metrics["train_seconds"] - metrics["eval_seconds"]) / metrics["steps"]
            if rep > 0:
                seconds[arm].append(per_step)
            print(f"cost {arm} round {rep}: {1000 * per_step:.1f} ms/step", flush=True)
    plain = statistics.median(seconds["plain"])
    return {
        "settings": {"config": CONFIGS["scratch"], "fixed": fixed, "arms": ARMS, "repeats": repeats},
        "ms_per_step": {arm: summary([1000 * s for s in v]) for arm, v in seconds.items()},
        "multiplier": {arm: round(statistics.median(v) / plain, 3) for arm, v in seconds.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", nargs="+", default=["scratch", "minilm"], choices=sorted(CONFIGS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cost-steps", type=int, default=150)
    parser.add_argument("--cost-repeats", type=int, default=2)
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a few steps only; proves the script works")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.backbones, args.cost_steps, args.cost_repeats = args.seeds[:1], ["scratch"], 10, 1
    measured_under = conditions()
    with tempfile.TemporaryDirectory() as tmp:
        result = {
            "benchmark": "robustness",
            "conditions": measured_under,
            "quick": args.quick,
            "seeds": args.seeds,
            "quality": quality(args.backbones, args.seeds, args.quick, Path(tmp)),
        }
        if not args.skip_cost:
            result["cost"] = cost(args.cost_steps, args.cost_repeats, Path(tmp))
    for backbone, section in result["quality"].items():
        s = section["summary"]
        print(
            f"{backbone}: char-20% drop cut {s['drop_cut_points']['median']:+.2f} points, clean loss "
            f"{s['clean_loss_points']['median']:+.2f}, attack success cut {s['attack_success_cut_points']['median']:+.2f}, "
            f"wall x{s['wall_multiplier']['median']:.2f}; goals {s['goals']}"
        )
    if "cost" in result:
        print("training-time multiplier:", result["cost"]["multiplier"])
    save("robustness", result, quick=args.quick)


if __name__ == "__main__":
    main()
