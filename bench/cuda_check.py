"""CUDA check: the main job on a GPU (bf16 and fp32), and parity of CUDA fp32 with the CPU.

Run where a CUDA device exists (it exits with one line where none does; ``--device cpu``
runs the same steps on the CPU, to check the script itself):

1. **Parity**: the main job's scratch model (elastic and coach off, dropout 0 so that no
   random numbers differ between the devices), 200 optimizer steps in fp32 on the CPU and
   on CUDA from the same seed; the largest difference of the logits on 64 val texts, and
   the test macro-F1 of each. Then the CPU-trained model itself on the device, fp32 and
   bf16 autocast: the largest logit difference of the same weights.
2. **Speed**: the main job config (elastic supernet + coach) for 600 steps on CUDA with
   bf16 autocast and with fp32, interleaved after a warm-up; training-loop examples/s
   (evaluations and checkpoints excluded), median of the repetitions.
3. **The main job on CUDA**: `configs/tweets-sentiment.yaml` as it is (bf16), test macro-F1,
   the coach's decisions and wall-clock.

    python bench/cuda_check.py            # a few minutes on one GPU
    python bench/cuda_check.py --quick    # proves the script works (still needs CUDA)
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

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attncoach.config import load_config  # noqa: E402
from attncoach.data.batching import collate  # noqa: E402
from attncoach.rundir import RunDir  # noqa: E402
from attncoach.train.recipe import Recipe  # noqa: E402
from conditions import conditions, save, summary  # noqa: E402

CONFIG = "configs/tweets-sentiment.yaml"


def train(out: Path, overrides: list[str]) -> tuple[Recipe, dict[str, Any]]:
    cfg = load_config(CONFIG, [*overrides, f"output_dir={out}", "log.tensorboard=false"])
    recipe = Recipe(cfg, RunDir(out), quiet=True)
    start = time.perf_counter()
    metrics = recipe.run()
    metrics["wall_seconds"] = time.perf_counter() - start
    return recipe, metrics


def loop_rate(metrics: dict[str, Any]) -> float:
    loop = metrics["train_seconds"] - metrics["eval_seconds"] - metrics["checkpoint_seconds"]
    return metrics["examples_seen"] / loop


def parity(work: Path, steps: int, device: str) -> dict[str, Any]:
    base = [
        f"train.max_steps={steps}",
        f"train.eval_every={steps}",
        "elastic.enabled=false",
        "coach.enabled=false",
        "train.precision=fp32",
        "model.dropout=0",
        "model.attention_dropout=0",
    ]
    logits, f1, models = {}, {}, []
    for side in ("cpu", device):
        recipe, metrics = train(work / f"parity-{side}-{len(f1)}", [*base, f"train.device={side}"])
        val = recipe.data.splits["val"]
        batch = collate(val.ids[:64])
        recipe.model.eval()
        with torch.no_grad():
            logits[len(f1)] = (
                recipe.model(batch["input_ids"].to(recipe.device), batch["attention_mask"].to(recipe.device))
                .float()
                .cpu()
            )
        f1[side if not f1 else "device"] = metrics["test"]["macro_f1"]
        models.append(recipe.model)
    diff = float((logits[0] - logits[1]).abs().max())
    scale = float(logits[0].abs().max())
    # the same weights on both devices: fp32, and bf16 autocast on the device
    model = models[0].to(device)
    ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
    with torch.no_grad():
        same_fp32 = float((model(ids, mask).float().cpu() - logits[0]).abs().max())
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            same_bf16 = float((model(ids, mask).float().cpu() - logits[0]).abs().max())
    print(
        f"parity: trained on each, max |logit diff| {diff:.2e} (logits up to {scale:.2f}); test F1 cpu "
        f"{f1['cpu']:.4f} {device} {f1['device']:.4f}; same weights fp32 {same_fp32:.2e}, bf16 {same_bf16:.2e}",
        flush=True,
    )
    return {
        "steps": steps,
        "trained_max_abs_logit_diff": diff,
        "max_abs_logit": scale,
        "test_macro_f1": f1,
        "same_weights_fp32_max_abs_logit_diff": same_fp32,
        "same_weights_bf16_max_abs_logit_diff": same_bf16,
    }


def speed(work: Path, steps: int, repeats: int, device: str) -> dict[str, Any]:
    base = [f"train.max_steps={steps}", f"train.eval_every={steps}", f"train.device={device}"]
    rates: dict[str, list[float]] = {"bf16": [], "fp32": []}
    for rep in range(repeats + 1):  # repetition 0 warms up
        for precision in ("bf16", "fp32") if rep % 2 == 0 else ("fp32", "bf16"):
            _, metrics = train(work / f"speed-{rep}-{precision}", [*base, f"train.precision={precision}"])
            if rep > 0:
                rates[precision].append(loop_rate(metrics))
    result = {k: summary(v) for k, v in rates.items()}
    result["bf16_over_fp32"] = statistics.median(rates["bf16"]) / statistics.median(rates["fp32"])
    print(
        f"speed: bf16 {result['bf16']['median']:.0f} examples/s, fp32 {result['fp32']['median']:.0f} "
        f"({result['bf16_over_fp32']:.2f}x)",
        flush=True,
    )
    return {"steps": steps, "examples_per_s": result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps per part: proves the script works")
    parser.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="cpu runs the same steps without a GPU (bf16 then means fp32)",
    )
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: no CUDA device here: bench/cuda_check.py needs one (or --device cpu)")
    logging.getLogger("attncoach").setLevel(logging.WARNING)
    info = conditions(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        same = parity(work, 10 if args.quick else 200, args.device)
        fast = speed(work, 20 if args.quick else 600, 1 if args.quick else 3, args.device)
        _, job = train(
            work / "main-job", [f"train.device={args.device}", *(["train.max_steps=30"] if args.quick else [])]
        )
        coach = job.get("coach") or {}
        main_job = {
            "test_macro_f1": job["test"]["macro_f1"],
            "steps": job["steps"],
            "wall_seconds": job["wall_seconds"],
            "train_seconds": job["train_seconds"],
            "examples_per_s": loop_rate(job),
            "decisions": coach.get("decisions", {}),
            "lr_scale_end": coach.get("knobs", {}).get("lr_scale", {}).get("end"),
        }
        print(
            f"main job on {args.device}: test macro-F1 {main_job['test_macro_f1']:.4f}, {main_job['steps']} steps, "
            f"{main_job['wall_seconds']:.0f} s, decisions {main_job['decisions']}",
            flush=True,
        )
    name = "cuda_check" if args.device == "cuda" else "cuda_check_on_cpu"
    save(
        name,
        {
            "benchmark": "cuda_check",
            "quick": args.quick,
            "device": args.device,
            "config": CONFIG,
            "conditions": info,
            "parity": same,
            "speed": fast,
            "main_job": main_job,
        },
        quick=args.quick,
    )


if __name__ == "__main__":
    main()
