"""The image_classification task against two baselines, on mnist-5k and digits, in one run.

For each corpus and each seed, on the task's own fixed split (mnist-5k 4,000 / 500 / 500,
digits 1,437 / 180 / 180, the same for every seed):

- **logistic regression** (scikit-learn, multinomial, on the pixels scaled to 0..1);
- a **small CNN** written here (two 3x3 conv layers of 32 and 64 channels, each with ReLU and
  2x2 max pooling, then a linear layer), trained with Adam for a fixed budget of epochs at
  batch 64; the test accuracy is that of its best val epoch;
- the **attncoach ViT** through the CLI with the shipped config (``configs/<corpus>.yaml``):
  ``attncoach train``, then ``attncoach eval RUN --width 0.5 --json`` for its width-0.5 sub-net
  (the elastic supernet trains it in the same run).

Each row records test accuracy and wall-clock seconds (training and evaluation). Goals, on the
median over seeds: the ViT at least as accurate as logistic regression and within 2 points of
the CNN; its width-0.5 sub-net within 1 point of the full ViT.

    python bench/images.py                      # seeds 0 1 2, mnist-5k and digits
    python bench/images.py --corpora digits     # one corpus
    python bench/images.py --quick              # a few steps, proves the script works (CI)
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

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conditions import conditions, save  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"mnist-5k": "configs/mnist-5k.yaml", "digits": "configs/digits.yaml"}
CNN_EPOCHS = {"mnist-5k": 15, "digits": 30}  # the CNN's fixed budget
CNN_BATCH = 64


def splits(corpus: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The task's own fixed split of a built-in corpus: (images (N, C, H, W) in 0..1, labels) per split."""
    from attncoach.tasks import TASKS
    from attncoach.train.settings import load_run_config

    cfg = load_run_config(None, ["task=image_classification", f"data.builtin={corpus}"])
    data = TASKS["image_classification"]().build(cfg)
    return {name: (split.pixels.astype(np.float32) / 255.0, split.labels) for name, split in data.splits.items()}


def logistic_regression(data: dict, seed: int, quick: bool) -> dict:
    from sklearn.linear_model import LogisticRegression

    (x, y), (tx, ty) = data["train"], data["test"]
    start = time.perf_counter()
    model = LogisticRegression(max_iter=20 if quick else 1000, random_state=seed)
    model.fit(x.reshape(len(x), -1), y)
    accuracy = float((model.predict(tx.reshape(len(tx), -1)) == ty).mean())
    return {"test_accuracy": accuracy, "wall_seconds": round(time.perf_counter() - start, 2)}


class SmallCNN(nn.Module):
    """Two 3x3 conv layers (32, 64 channels), each with ReLU and 2x2 max pooling, then a linear layer."""

    def __init__(self, channels: int, side: int, classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.out = nn.Linear(64 * (side // 4) ** 2, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x).flatten(1))


def _accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with torch.inference_mode():
        predicted = torch.cat([model(torch.from_numpy(x[i : i + 256])).argmax(-1) for i in range(0, len(x), 256)])
    model.train()
    return float((predicted.numpy() == y).mean())


def small_cnn(data: dict, seed: int, epochs: int) -> dict:
    """The CNN after each epoch of a fixed budget; the test accuracy of the best val epoch."""
    torch.manual_seed(seed)
    (x, y), (vx, vy), (tx, ty) = data["train"], data["val"], data["test"]
    model = SmallCNN(x.shape[1], x.shape[2], int(y.max()) + 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed)
    best = (-1.0, 0.0, 0)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x))
        for i in range(0, len(x), CNN_BATCH):
            index = order[i : i + CNN_BATCH]
            loss = nn.functional.cross_entropy(model(torch.from_numpy(x[index])), torch.from_numpy(y[index]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        val = _accuracy(model, vx, vy)
        if val > best[0]:
            best = (val, _accuracy(model, tx, ty), epoch)
    return {
        "test_accuracy": best[1],
        "val_accuracy": best[0],
        "best_epoch": best[2],
        "epochs": epochs,
        "parameters": sum(p.numel() for p in model.parameters()),
        "wall_seconds": round(time.perf_counter() - start, 2),
    }


def attncoach(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "attncoach", *args], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(
            f"attncoach {' '.join(args[:3])} failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}"
        )
    return proc


def vit(corpus: str, seed: int, run: Path, quick: bool) -> dict:
    """The shipped config through the CLI, then its width-0.5 sub-net on the test split."""
    budget = ["train.max_steps=20", "train.eval_every=10"] if quick else []
    start = time.perf_counter()
    attncoach("train", "--quiet", "--config", CONFIGS[corpus], f"output_dir={run}", f"train.seed={seed}", *budget)
    wall = time.perf_counter() - start
    metrics = json.loads((run / "metrics.json").read_text())
    half = json.loads(attncoach("eval", str(run), "--width", "0.5", "--json", "--quiet").stdout)
    return {
        "test_accuracy": metrics["test"]["accuracy"],
        "test_macro_f1": metrics["test"]["macro_f1"],
        "width_0.5_test_accuracy": half["accuracy"],
        "steps": metrics["steps"],
        "train_seconds": metrics["train_seconds"],
        "wall_seconds": round(wall, 2),
    }


def medians(rows: list[dict]) -> dict:
    keys = [k for k, v in rows[0].items() if isinstance(v, (int, float))]
    return {k: statistics.median(r[k] for r in rows) for k in keys}


def goals(summary: dict) -> dict:
    vit, lr, cnn = summary["vit"], summary["logistic_regression"], summary["small_cnn"]
    return {
        "vit_at_least_logistic_regression": vit["test_accuracy"] >= lr["test_accuracy"],
        "vit_within_2_points_of_cnn": vit["test_accuracy"] >= cnn["test_accuracy"] - 0.02,
        "width_0.5_within_1_point_of_full": vit["width_0.5_test_accuracy"] >= vit["test_accuracy"] - 0.01,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="a few steps only; proves the script works")
    args = parser.parse_args()
    seeds = args.seeds[:1] if args.quick else args.seeds
    result: dict = {"quick": args.quick, "seeds": seeds, "corpora": {}, "conditions": conditions()}
    with tempfile.TemporaryDirectory() as tmp:
        for corpus in args.corpora:
            data = splits(corpus)
            rows: dict[str, list[dict]] = {"logistic_regression": [], "small_cnn": [], "vit": []}
            for seed in seeds:  # the three arms one after the other, seed by seed
                rows["logistic_regression"].append({"seed": seed, **logistic_regression(data, seed, args.quick)})
                epochs = 1 if args.quick else CNN_EPOCHS[corpus]
                rows["small_cnn"].append({"seed": seed, **small_cnn(data, seed, epochs)})
                rows["vit"].append({"seed": seed, **vit(corpus, seed, Path(tmp) / f"{corpus}-{seed}", args.quick)})
                print(
                    f"{corpus} seed {seed}: "
                    + ", ".join(
                        f"{arm} {r[-1]['test_accuracy']:.4f} ({r[-1]['wall_seconds']:.0f} s)" for arm, r in rows.items()
                    )
                    + f", ViT width 0.5 {rows['vit'][-1]['width_0.5_test_accuracy']:.4f}",
                    flush=True,
                )
            summary = {arm: medians(r) for arm, r in rows.items()}
            result["corpora"][corpus] = {
                "split": {name: len(part[1]) for name, part in data.items()},
                "rows": rows,
                "summary": summary,
                "goals": goals(summary),
            }
    save("images", result, quick=args.quick)


if __name__ == "__main__":
    main()
