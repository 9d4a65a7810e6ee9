"""The coach: its overhead, and recovery from a poisoned batch and an LR spike.

On the main job's config (`configs/tweets-sentiment.yaml`, the elastic supernet), in one run:

1. **Overhead**: the same number of steps with the coach's default policies on and off,
   alternating (A B, B A, ...) after a warm-up pair; training-loop seconds (evaluation and
   checkpoints excluded) of each.
2. **NaN injection**: one epoch each, with the coach on:
   - a clean run;
   - a poisoned batch: at step 300 the batch's logits are multiplied by NaN, so its loss
     and every gradient are NaN;
   - an LR spike: from step 300, 20 optimizer steps at 100 x the scheduled LR;
   and the two injected runs again without the coach, to show what the guard prevents.
   Test macro-F1 of each, seeds 0, 1, 2 for the coached runs (seed 0 for the uncoached
   ones); goal: the median of the coached injected runs within 1 point of the clean runs'.

Then (unless ``--skip-quality``) `bench/coach_quality.py`: robustness to the initial LR, the
equal-compute comparison with Optuna and the best fixed schedule, 3 seeds each.

    python bench/coach.py            # about 15 minutes on 2 cores, then coach_quality.py's 30
    python bench/coach.py --quick    # proves the script works
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attncoach.config import load_config  # noqa: E402
from attncoach.errors import AttncoachError  # noqa: E402
from attncoach.rundir import RunDir  # noqa: E402
from attncoach.train.recipe import Recipe  # noqa: E402
from conditions import conditions, save, summary  # noqa: E402

CONFIG = "configs/tweets-sentiment.yaml"
INJECT_AT = 300
SPIKE_STEPS, SPIKE_FACTOR = 20, 100.0


class InjectedRecipe(Recipe):
    """The recipe with one fault injected: ``nan_batch`` or ``lr_spike`` (or none)."""

    def __init__(self, cfg: Any, run: RunDir, fault: str | None):
        super().__init__(cfg, run, quiet=True)
        self.fault = fault

    def _forward_backward(self, batch, scale):
        if self.fault == "nan_batch" and self.state.step == INJECT_AT:
            hook = self.model.head.register_forward_hook(lambda mod, args, out: out * float("nan"))
            try:
                return super()._forward_backward(batch, scale)
            finally:
                hook.remove()
        return super()._forward_backward(batch, scale)

    def _update(self, examples):
        spiking = self.fault == "lr_spike" and INJECT_AT <= self.state.step < INJECT_AT + SPIKE_STEPS
        if not spiking:
            return super()._update(examples)
        saved = [g["base_lr"] for g in self.optimizer.param_groups]
        for group in self.optimizer.param_groups:
            group["base_lr"] *= SPIKE_FACTOR
        try:
            return super()._update(examples)
        finally:
            for group, lr in zip(self.optimizer.param_groups, saved):
                group["base_lr"] = lr


def train(out: Path, overrides: list[str], fault: str | None = None) -> dict[str, Any]:
    cfg = load_config(CONFIG, [*overrides, f"output_dir={out}", "log.tensorboard=false"])
    start = time.perf_counter()
    try:
        metrics = InjectedRecipe(cfg, RunDir(out), fault).run()
    except AttncoachError as exc:  # no evaluation had a finite val loss: the run kept no model
        if "training diverged" not in str(exc):
            raise
        return {"test_macro_f1": None, "diverged": str(exc), "wall_seconds": time.perf_counter() - start}
    loop = metrics["train_seconds"] - metrics["eval_seconds"] - metrics["checkpoint_seconds"]
    coach = metrics.get("coach") or {}
    return {
        "test_macro_f1": metrics["test"]["macro_f1"],
        "loop_seconds": loop,
        "steps": metrics["steps"],
        "wall_seconds": time.perf_counter() - start,
        "decisions": coach.get("decisions", {}),
        "knobs_end": {k: v["end"] for k, v in coach.get("knobs", {}).items()},
        "stop_reason": metrics.get("stop_reason"),
    }


def overhead(work: Path, steps: int, repeats: int) -> dict[str, Any]:
    base = [f"train.max_steps={steps}", f"train.eval_every={steps}"]
    on, off = [], []
    for rep in range(repeats + 1):  # repetition 0 warms up
        order = (True, False) if rep % 2 == 0 else (False, True)
        for coached in order:
            result = train(work / f"overhead-{rep}-{coached}", [*base, f"coach.enabled={str(coached).lower()}"])
            if rep > 0:
                (on if coached else off).append(result["loop_seconds"])
    ratios = [a / b for a, b in zip(on, off)]
    print(
        f"overhead: coach on {statistics.median(on):.1f} s, off {statistics.median(off):.1f} s "
        f"({100 * (statistics.median(ratios) - 1):+.1f} %)",
        flush=True,
    )
    return {
        "steps": steps,
        "coach_on_loop_seconds": summary(on),
        "coach_off_loop_seconds": summary(off),
        "ratio_on_over_off": summary(ratios),
    }


def injection(work: Path, epochs: str, seeds: tuple[int, ...]) -> dict[str, Any]:
    base = [f"train.epochs={epochs}", "train.early_stopping_patience=null"]
    runs: dict[str, Any] = {}
    conditions_ = [("clean", None, True), ("nan_batch", "nan_batch", True), ("lr_spike", "lr_spike", True)]
    for seed in seeds:
        for name, fault, coached in conditions_ + (
            [("nan_batch_no_coach", "nan_batch", False), ("lr_spike_no_coach", "lr_spike", False)]
            if seed == seeds[0]
            else []
        ):
            result = train(
                work / f"{name}-{seed}", [*base, f"train.seed={seed}", f"coach.enabled={str(coached).lower()}"], fault
            )
            runs.setdefault(name, {})[seed] = result
            shown = "diverged, no model kept" if result["test_macro_f1"] is None else f"{result['test_macro_f1']:.4f}"
            print(f"{name} seed {seed}: test macro-F1 {shown}, decisions {result.get('decisions')}", flush=True)
    out: dict[str, Any] = {"runs": runs}
    clean = statistics.median(runs["clean"][s]["test_macro_f1"] for s in seeds)
    out["clean_median"] = clean
    for name in ("nan_batch", "lr_spike"):
        f1 = statistics.median(runs[name][s]["test_macro_f1"] for s in seeds)
        below = {s: 100 * (runs["clean"][s]["test_macro_f1"] - runs[name][s]["test_macro_f1"]) for s in seeds}
        out[name] = {
            "median": f1,
            "points_below_clean_median": 100 * (clean - f1),
            "points_below_clean_per_seed": below,
            "within_1_point": 100 * (clean - f1) <= 1.0,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny runs that only prove the script works")
    parser.add_argument(
        "--skip-quality", action="store_true", help="only overhead and injection (not coach_quality.py)"
    )
    args = parser.parse_args()
    logging.getLogger("attncoach").setLevel(logging.WARNING)
    global INJECT_AT
    if args.quick:
        INJECT_AT = 5
    info = conditions()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cost = overhead(work, steps=10 if args.quick else 600, repeats=1 if args.quick else 3)
        faults = injection(work, epochs="0.02" if args.quick else "1", seeds=(0,) if args.quick else (0, 1, 2))
    save(
        "coach",
        {
            "benchmark": "coach",
            "quick": args.quick,
            "config": CONFIG,
            "conditions": info,
            "overhead": cost,
            "injection": faults,
            "inject_at_step": INJECT_AT,
            "spike": {"steps": SPIKE_STEPS, "factor": SPIKE_FACTOR},
        },
        quick=args.quick,
    )
    if not args.skip_quality:
        import coach_quality

        coach_quality.measure(quick=args.quick, workers=2)


if __name__ == "__main__":
    main()
