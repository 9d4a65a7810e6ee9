"""Loop overhead and model FLOP utilisation of the training recipe.

Side by side, in one run, interleaved (A B, B A, A B, ...): attncoach's recipe (Recipe.train,
with its LR schedule, logging, progress and TensorBoard) against a minimal hand-written PyTorch
loop over the same model initialisation, the same batches in the same order and the same
optimizer. Both count training tokens (real, unpadded) per second over the same steps; the
recipe's time excludes its one evaluation and checkpoint at the last step (it reports them
separately), since the hand loop does neither.

Coach cost: the same recipe with the coach on (its default policies), from the same
initialisation, in the same repetitions. The three runs of a repetition go recipe, hand loop,
coach on one repetition and coach, hand loop, recipe on the next, so that neither side of
either ratio always runs in the same place.

Both loops run in the precision the recipe picks (`train.precision: auto`: bf16 autocast where
the CPU has native bf16, else fp32; recorded as "precision").

Model FLOP utilisation: analytic training FLOPs of the recipe's steps (3x the forward matmul
FLOPs, on the padded tokens the hardware computes) per second, divided by the matmul FLOP/s of
a large square torch.mm in that precision (bf16 or fp32), measured beside each repetition in the
same run; also against the fp32 matmul's FLOP/s ("mfu_of_fp32_peak"), the measure of earlier rows.

    python bench/train_throughput.py            # default model, 300 steps x 5 repeats
    python bench/train_throughput.py --quick    # proves the script works (CI)
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attncoach.config import load_config  # noqa: E402
from attncoach.data.batching import collate  # noqa: E402
from attncoach.models.saved import autocast_for  # noqa: E402
from attncoach.rundir import RunDir  # noqa: E402
from attncoach.train.optim import make_optimizer  # noqa: E402
from attncoach.train.recipe import Recipe  # noqa: E402
from conditions import conditions, save, summary  # noqa: E402


def make_recipe(config: str, steps: int, overrides: list[str], out: Path) -> Recipe:
    cfg = load_config(
        config,
        [
            f"train.max_steps={steps}",
            f"train.eval_every={steps}",
            f"train.checkpoint_every={steps}",
            "train.early_stopping_patience=null",
            f"output_dir={out}",
            *overrides,
        ],
    )
    recipe = Recipe(cfg, RunDir(out), quiet=True)
    recipe.setup()
    return recipe


def run_recipe(recipe: Recipe) -> tuple[float, int]:
    """Seconds of pure training (no eval, no checkpoint) and real tokens of every step computed."""
    computed = 0
    step = recipe.train_step

    def counting_step(batch, *rest):
        nonlocal computed
        computed += int(batch["attention_mask"].sum())
        return step(batch, *rest)

    recipe.train_step = counting_step  # a rolled-back probe step is computed too: it is counted
    start = time.perf_counter()
    recipe.train()
    total = time.perf_counter() - start
    s = recipe.state
    return total - s.eval_seconds - s.checkpoint_seconds, computed


def run_hand_loop(recipe: Recipe, init_state: dict, steps: int) -> tuple[float, int]:
    """The minimal loop a user would write: same model, batches, optimizer, clipping, precision."""
    t = recipe.cfg.train
    model = recipe.model
    model.load_state_dict(init_state)
    model.train()
    opt = make_optimizer(model, t)  # the same optimizer as the recipe's
    train = recipe.data.splits["train"]
    labels = torch.as_tensor(train.labels, dtype=torch.long)
    batches = recipe.sampler.batches(0)[:steps]
    tokens = 0
    start = time.perf_counter()
    for index in batches:
        batch = collate([train.ids[i] for i in index], labels[index])
        with autocast_for(recipe.device, recipe.bf16):
            logits = model(batch["input_ids"], batch["attention_mask"])
            loss = F.cross_entropy(logits, batch["labels"], label_smoothing=t.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
        tokens += int(batch["attention_mask"].sum())
    return time.perf_counter() - start, tokens


def training_flops(recipe: Recipe, steps: int) -> float:
    """3 x forward matmul FLOPs over the padded batches of the first ``steps`` steps."""
    m = recipe.cfg.model
    train = recipe.data.splits["train"]
    per_token_linear = 2 * (3 * m.dim * m.dim + m.dim * m.dim + 2 * m.dim * m.ffn_dim) * m.layers
    total = 0.0
    for index in recipe.sampler.batches(0)[:steps]:
        length = max(len(train.ids[i]) for i in index)
        padded = len(index) * length
        attention = 2 * 2 * length * m.dim * m.layers  # QK^T and AV, per token
        total += padded * (per_token_linear + attention)
    return 3.0 * total


def matmul_flops_per_second(size: int = 2048, repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.mm(a, b)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/tweets-sentiment.yaml")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="tiny run that only proves the script works")
    args = parser.parse_args()
    # the hand loop trains one plain model: every pillar off (supernet, coach, learning record)
    overrides = ["log.tensorboard=true", "elastic.enabled=false", "coach.enabled=false", "curriculum.record=false"]
    if args.quick:
        args.steps, args.repeats = 10, 1
        overrides += ["model.dim=32", "model.heads=2", "model.ffn_dim=64", "model.layers=1"]
    logging.getLogger("attncoach").setLevel(logging.WARNING)
    measured_under = conditions()  # at the start: the code that runs is the code recorded
    coached = [o for o in overrides if not o.startswith("coach.enabled")] + ["coach.enabled=true"]
    recipe_rates, hand_rates, coach_rates, mfus, peaks, fp32_mfus = [], [], [], [], [], []
    size = 1024 if args.quick else 2048
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats + 1):  # repetition 0 is the warm-up
            recipe = make_recipe(args.config, args.steps, overrides, Path(tmp) / f"r{rep}")
            init_state = {k: v.clone() for k, v in recipe.model.state_dict().items()}
            flops = training_flops(recipe, args.steps)
            coach_recipe = make_recipe(args.config, args.steps, coached, Path(tmp) / f"c{rep}")
            coach_recipe.model.load_state_dict(init_state)
            if rep % 2 == 0:  # recipe, hand loop, coach; then coach, hand loop, recipe; ...
                seconds, tokens = run_recipe(recipe)
                hand_seconds, hand_tokens = run_hand_loop(recipe, init_state, args.steps)
                coach_seconds, coach_tokens = run_recipe(coach_recipe)
            else:
                coach_seconds, coach_tokens = run_recipe(coach_recipe)
                hand_seconds, hand_tokens = run_hand_loop(recipe, init_state, args.steps)
                recipe.model.load_state_dict(init_state)
                seconds, tokens = run_recipe(recipe)
            assert tokens == hand_tokens, "the two loops must see the same tokens"
            dtype = torch.bfloat16 if recipe.bf16 else torch.float32
            peak = matmul_flops_per_second(size, dtype=dtype)  # beside each pair: the machine is shared and noisy
            fp32_peak = peak if dtype == torch.float32 else matmul_flops_per_second(size)
            if rep == 0:
                continue
            recipe_rates.append(tokens / seconds)
            hand_rates.append(hand_tokens / hand_seconds)
            coach_rates.append(coach_tokens / coach_seconds)
            peaks.append(peak)
            mfus.append(flops / seconds / peak)
            fp32_mfus.append(flops / seconds / fp32_peak)
            print(
                f"rep {rep}: recipe {tokens / seconds:,.0f} tok/s, hand loop {hand_tokens / hand_seconds:,.0f} "
                f"tok/s, coach on {coach_tokens / coach_seconds:,.0f} tok/s, MFU {mfus[-1]:.3f}"
            )
    ratios = [r / h for r, h in zip(recipe_rates, hand_rates)]
    coach_costs = [off / on for off, on in zip(recipe_rates, coach_rates)]  # seconds per token, on / off
    result = {
        "benchmark": "train_throughput",
        "conditions": measured_under,
        "config": args.config,
        "steps": args.steps,
        "repeats": args.repeats,
        "quick": args.quick,
        "precision": recipe.precision,
        "recipe_tokens_per_s": summary(recipe_rates),
        "hand_loop_tokens_per_s": summary(hand_rates),
        "ratio_recipe_over_hand": summary(ratios),
        "goal_ratio": 0.97,
        "coach_on_tokens_per_s": summary(coach_rates),
        "ratio_coach_on_over_off_seconds_per_token": summary(coach_costs),
        "goal_coach_ratio": 1.05,
        "matmul_flops_per_s": summary(peaks),
        "matmul_dtype": recipe.precision,
        "recipe_model_flops_per_s": summary([m * p for m, p in zip(mfus, peaks)]),
        "mfu": summary(mfus),
        "mfu_of_fp32_peak": summary(fp32_mfus),  # the measure of the rows before bf16 (the same when fp32)
        "goal_mfu": 0.5,
    }
    print(
        f"loop overhead: recipe/hand = {result['ratio_recipe_over_hand']['median']:.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f}); coach on/off "
        f"{result['ratio_coach_on_over_off_seconds_per_token']['median']:.3f} s per token; MFU {result['mfu']['median']:.3f} "
        f"of {result['matmul_flops_per_s']['median'] / 1e9:.1f} GFLOP/s {recipe.precision} matmul"
    )
    save("train_throughput", result, quick=args.quick)


if __name__ == "__main__":
    main()
