"""Data-parallel training: 2 processes against 1 at the same global batch (tweets-sentiment, scratch model).

Each seed trains the shipped config (supernet, coach, learning record) twice through the CLI,
in alternating order (1 then 2 processes, 2 then 1 on the next seed): one process, and
``torchrun --nproc_per_node 2`` (here ``python -m torch.distributed.run --standalone``), both
at the config's global ``train.batch_size``. On CPU (gloo) the one process gets every core
(``train.threads``) and each of the two half of them; with ``--backend nccl`` both runs train on
CUDA, one GPU per process (the machine needs two).

Reported per run and as medians over the seeds: training examples per second (examples trained
on over ``train_seconds`` less the evaluation, checkpoint and curriculum time, which the ranks do
not share), the ratio 2 processes / 1, and the final test macro-F1 of both with their difference.
Goal: the two F1 within 0.5 point.

    python bench/ddp.py                   # seeds 0 1 2, gloo on this machine's CPU cores
    python bench/ddp.py --backend nccl    # on a machine with two GPUs
    python bench/ddp.py --quick           # a tiny run that proves the script works (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conditions import conditions, save, summary  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "configs/tweets-sentiment.yaml"
QUICK = [
    "model.dim=32",
    "model.heads=2",
    "model.ffn_dim=64",
    "data.vocab_size=2000",
    "train.max_steps=20",
    "train.eval_every=10",
    "log.report=false",
]
GOAL_F1_POINTS = 0.5


def train(processes: int, overrides: list[str], out: Path) -> dict:
    """One run of the config through the CLI on ``processes`` processes; its metrics.json."""
    command = [sys.executable, "-m", "attncoach", "train", "--quiet", "--config", CONFIG, f"output_dir={out}"]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}", "--standalone"]
        command = [*launcher, *command[1:]]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([*command, *overrides], capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{processes}-process run failed (exit {proc.returncode}):\n{proc.stderr.strip()[-1500:]}")
    return json.loads((out / "metrics.json").read_text())


def row_of(processes: int, seed: int, metrics: dict) -> dict:
    s = metrics
    training = s["train_seconds"] - s["eval_seconds"] - s["checkpoint_seconds"] - s["curriculum_seconds"]
    return {
        "processes": processes,
        "seed": seed,
        "examples_per_s": round(s["examples_seen"] / training, 2),
        "training_seconds": round(training, 2),
        "train_seconds": s["train_seconds"],
        "examples_seen": s["examples_seen"],
        "steps": s["steps"],
        "stopped_early": s["stopped_early"],
        "test_macro_f1": s["test"]["macro_f1"],
    }


def device_overrides(backend: str, processes: int) -> list[str]:
    """Where each process trains, and with how many CPU threads."""
    if backend == "nccl":
        return ["train.device=cuda"]
    cores = os.cpu_count() or 1
    return ["train.device=cpu", f"train.threads={max(1, cores // processes)}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--backend", choices=["gloo", "nccl"], default="gloo")
    parser.add_argument("--quick", action="store_true", help="a tiny run that only proves the script works")
    args = parser.parse_args()
    if args.backend == "nccl":
        import torch

        if torch.cuda.device_count() < 2:
            raise SystemExit(
                f"--backend nccl needs two GPUs, one per process; this machine has {torch.cuda.device_count()}"
            )
    seeds = args.seeds[:1] if args.quick else args.seeds
    measured_under = conditions("cuda" if args.backend == "nccl" else "cpu")  # the code that runs is the code recorded
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, seed in enumerate(seeds):
            for processes in (1, 2) if n % 2 == 0 else (2, 1):
                overrides = [f"train.seed={seed}", *device_overrides(args.backend, processes)]
                metrics = train(
                    processes, overrides + (QUICK if args.quick else []), Path(tmp) / f"s{seed}-p{processes}"
                )
                rows.append(row_of(processes, seed, metrics))
                r = rows[-1]
                print(
                    f"seed {seed}, {processes} process(es): {r['examples_per_s']:,.0f} examples/s, "
                    f"test macro-F1 {r['test_macro_f1']:.4f} ({r['steps']} steps)"
                )
    by = {p: {r["seed"]: r for r in rows if r["processes"] == p} for p in (1, 2)}
    ratios = [by[2][s]["examples_per_s"] / by[1][s]["examples_per_s"] for s in seeds]
    gaps = [100 * (by[2][s]["test_macro_f1"] - by[1][s]["test_macro_f1"]) for s in seeds]
    f1 = {p: statistics.median(r["test_macro_f1"] for r in by[p].values()) for p in (1, 2)}
    result = {
        "benchmark": "ddp",
        "conditions": measured_under,
        "settings": {
            "config": CONFIG,
            "backend": args.backend,
            "seeds": seeds,
            "global_batch": "the config's train.batch_size, the same for both",
            "threads": {p: device_overrides(args.backend, p) for p in (1, 2)},
            "overrides": QUICK if args.quick else [],
        },
        "quick": args.quick,
        "rows": rows,
        "examples_per_s_ratio_2_over_1": summary(ratios),
        "test_macro_f1": {"1_process": f1[1], "2_processes": f1[2]},
        "f1_gap_points_2_minus_1": summary(gaps),
        "goal": f"|test macro-F1 of 2 processes - of 1| <= {GOAL_F1_POINTS} point (median over the seeds)",
        "met": abs(statistics.median(gaps)) <= GOAL_F1_POINTS,
    }
    print(
        f"2 processes / 1: x{result['examples_per_s_ratio_2_over_1']['median']:.2f} examples/s; test macro-F1 "
        f"{f1[1]:.4f} (1) vs {f1[2]:.4f} (2), gap {statistics.median(gaps):+.2f} points"
    )
    save("ddp", result, quick=args.quick)


if __name__ == "__main__":
    main()
