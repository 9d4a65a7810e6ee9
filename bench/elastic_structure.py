"""Elastic structure: one supernet run vs separately trained sub-nets, rewiring, depth, search, export.

For one backbone (the main job's scratch model, or MiniLM) on tweets-sentiment, in one run:

1. **Separate fine-tunes**: the full model and a standalone model of each sub-net size,
   width {0.25, 0.5, 0.75, 1.0} x depth {0.5, 1.0}, each trained for the same number of
   steps as everything else here. A standalone model is the full model's initial weights
   sliced to the sub-net (``elastic.export.export_subnet``); for MiniLM the heads and
   neurons are first ordered by importance, so the pruned model starts from the most
   important pretrained weights (DynaBERT's width reduction, Hou et al. 2020).
2. **One elastic run** (``elastic.enabled``, sandwich rule: largest + smallest + 1 random
   sub-net per step, in-place distillation, Mix'n'Match per-layer widths with separate FFN
   widths so the search below has a dense space) for the same number of steps.
3. Test macro-F1 of every grid sub-net of the elastic run vs the same-size separate model;
   wall-clock of the elastic run vs one full-size fine-tune and vs the four widths trained
   separately.
4. **Rewiring alone**: the separately fine-tuned full model sliced to widths < 1 by plain
   prefixes, and again after importance rewiring (no further training).
5. **Depth 0.5**: the elastic run's depth-0.5 sub-net vs the separately fine-tuned full model
   with every other layer dropped (layers 0, 2, 4, ...).
6. **Search**: the best sub-net under a latency budget at batch 32 (60% of the full model's
   measured latency), vs the best width-only and depth-only sub-nets under the same budget
   (candidates scored on val: all of it for scratch, its first 512 examples for MiniLM).
7. **Export**: the search winner and the w0.5 d0.5 sub-net exported standalone: parameters,
   file size, latency (batch 1 and 32) next to the masked sub-net, and the largest logit gap.

    python bench/elastic_structure.py --backbone scratch    # ~15 min on 2 cores
    python bench/elastic_structure.py --backbone minilm     # ~35 min on 2 cores (300 steps per run)
    python bench/elastic_structure.py --backbone scratch --quick   # proves the script works
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attncoach.config import RunConfig, load_config  # noqa: E402
from attncoach.data.batching import LengthBucketBatchSampler, collate  # noqa: E402
from attncoach.data.prepare import PreparedData, prepare_data  # noqa: E402
from attncoach.elastic.export import export_model_dir, export_subnet  # noqa: E402
from attncoach.elastic.importance import importance, rewire  # noqa: E402
from attncoach.elastic.measure import Judge, measure_latency  # noqa: E402
from attncoach.elastic.search import Budget, search, search_space  # noqa: E402
from attncoach.elastic.space import subnet_for  # noqa: E402
from attncoach.errors import AttncoachError  # noqa: E402
from attncoach.models.classifier import TextClassifier  # noqa: E402
from attncoach.models.encoder import SubnetConfig  # noqa: E402
from attncoach.models.saved import SavedClassifier
from attncoach.rundir import RunDir  # noqa: E402
from attncoach.tasks.text_classification import evaluate_ids  # noqa: E402
from attncoach.train.recipe import Recipe  # noqa: E402
from conditions import conditions, save  # noqa: E402

WIDTHS = (0.25, 0.5, 0.75, 1.0)
DEPTHS = (0.5, 1.0)
SETUPS = {
    # the main job's model and recipe, early stopping off so every run takes the same steps
    "scratch": ("configs/tweets-sentiment.yaml", ["train.early_stopping_patience=null", "elastic.enabled=false"]),
    # MiniLM's fine-tuning recipe, shortened: 300 steps (about a third of an epoch)
    "minilm": (
        "configs/tweets-minilm.yaml",
        ["train.max_steps=300", "train.eval_every=100", "train.early_stopping_patience=null", "elastic.enabled=false"],
    ),
}
FITNESS_EXAMPLES = {"scratch": None, "minilm": 512}  # search: val examples that score each candidate
ELASTIC = [
    "elastic.enabled=true",
    "elastic.random_subnets=1",
    "elastic.per_layer=true",
    "elastic.ffn_widths=[0.25, 0.5, 0.75, 1.0]",
]
IMPORTANCE_BATCHES = 16


def importance_sample(data: PreparedData, batch_size: int, seed: int, device: torch.device) -> list[dict]:
    """The first training batches of epoch 0: what elastic runs rewire on, too."""
    train = data.splits["train"]
    batches = LengthBucketBatchSampler(train.lengths, batch_size, seed=seed).batches(0)
    return [{k: v.to(device) for k, v in train.batch(index).items()} for index in batches[:IMPORTANCE_BATCHES]]


class StandaloneSubnetRecipe(Recipe):
    """Fine-tunes a standalone model of one sub-net's size: the 'trained separately' baseline."""

    def __init__(self, cfg: RunConfig, run: RunDir, width: float, depth: float):
        super().__init__(cfg, run, quiet=True)
        self.width, self.depth = width, depth

    def _new_model(self) -> TextClassifier:
        model, data = super()._new_model(), self.data
        if (self.width, self.depth) == (1.0, 1.0):
            return model
        if self.backbone is not None:  # keep the most important pretrained heads and neurons
            t = self.cfg.train
            rewire(model, importance(model, importance_sample(data, t.batch_size, t.seed, torch.device("cpu"))))
        return export_subnet(model, subnet_for(model.encoder.config, self.width, self.depth))


def train(
    setup: str, out: Path, extra: list[str], width: float = 1.0, depth: float = 1.0, reuse: bool = False
) -> dict[str, Any]:
    """Train one run (or, with ``reuse``, take a finished one and the wall-clock measured when it ran)."""
    if reuse and (out / "metrics.json").is_file() and (out / "bench_wall.json").is_file():
        metrics = json.loads((out / "metrics.json").read_text())
        wall = json.loads((out / "bench_wall.json").read_text())["wall_seconds"]
        print(
            f"  reused {out.name}: test macro-F1 {metrics['test']['macro_f1']:.4f}, trained in {wall:.0f} s", flush=True
        )
    else:
        config, overrides = SETUPS[setup]
        cfg = load_config(config, [*overrides, *extra, f"output_dir={out}", "log.tensorboard=false"])
        start = time.perf_counter()
        metrics = StandaloneSubnetRecipe(cfg, RunDir(out), width, depth).run()
        wall = time.perf_counter() - start
        (out / "bench_wall.json").write_text(json.dumps({"wall_seconds": wall}))
        print(f"  trained {out.name}: test macro-F1 {metrics['test']['macro_f1']:.4f} in {wall:.0f} s", flush=True)
    return {
        "wall_seconds": wall,
        "train_seconds": metrics["train_seconds"],
        "steps": metrics["steps"],
        "test_macro_f1": metrics["test"]["macro_f1"],
        "metrics": metrics,
    }


def f1(clf: SavedClassifier, split: Any, subnet: SubnetConfig | None) -> float:
    clf.model.set_subnet(subnet)
    try:
        return evaluate_ids(clf.model, split.ids, split.labels, clf.labels, 256, clf.device)["macro_f1"]
    finally:
        clf.model.set_subnet(None)


def splits_for(run: Path, clf: SavedClassifier) -> PreparedData:
    cfg = load_config(run / "config.yaml")
    return prepare_data(cfg.data, cfg.train.seed, tokenizer=clf.tokenizer, labels=clf.labels)


def grid_comparison(elastic: SavedClassifier, separate: dict[tuple, dict], test: Any) -> list[dict]:
    rows = []
    for depth in DEPTHS:
        for width in WIDTHS:
            sub = subnet_for(elastic.model.encoder.config, width, depth)
            elastic.model.set_subnet(sub)
            params = elastic.model.encoder.num_parameters(active_only=True)
            elastic.model.set_subnet(None)
            ours, alone = f1(elastic, test, sub), separate[(width, depth)]["test_macro_f1"]
            rows.append(
                {
                    "width": width,
                    "depth": depth,
                    "subnet": str(sub),
                    "encoder_parameters": params,
                    "elastic_test_macro_f1": ours,
                    "separate_test_macro_f1": alone,
                    "gap_points": 100 * (ours - alone),
                    "within_1_point": ours >= alone - 0.01,
                }
            )
            print(f"  w{width:.2f} d{depth:.2f}: elastic {ours:.4f} separate {alone:.4f}", flush=True)
    return rows


def rewiring_rows(full_dir: Path, data: PreparedData, cfg: RunConfig) -> list[dict]:
    clf = SavedClassifier.load(full_dir)
    test = data.splits["test"]
    config = clf.model.encoder.config
    prefix = {w: f1(clf, test, subnet_for(config, w, 1.0)) for w in WIDTHS[:-1]}
    sample = importance_sample(data, cfg.train.batch_size, cfg.train.seed, clf.device)
    full_before = f1(clf, test, None)
    rewire(clf.model, importance(clf.model, sample))
    full_after = f1(clf, test, None)
    rows = []
    for w in WIDTHS[:-1]:
        rewired = f1(clf, test, subnet_for(config, w, 1.0))
        rows.append(
            {
                "width": w,
                "prefix_test_macro_f1": prefix[w],
                "rewired_test_macro_f1": rewired,
                "rewiring_wins": rewired > prefix[w],
            }
        )
        print(f"  rewiring w{w:.2f}: prefix {prefix[w]:.4f} rewired {rewired:.4f}", flush=True)
    return [{"full_model_before": full_before, "full_model_after": full_after}, *rows]


def depth_rows(elastic: SavedClassifier, full_dir: Path, test: Any) -> dict:
    config = elastic.model.encoder.config
    ours = f1(elastic, test, subnet_for(config, 1.0, 0.5))
    plain = SavedClassifier.load(full_dir)
    every_other = SubnetConfig(layers=tuple(range(0, config.layers, 2)))
    theirs = f1(plain, test, every_other)
    print(f"  depth 0.5: elastic {ours:.4f}, every other layer dropped {theirs:.4f}", flush=True)
    return {
        "elastic_subnet": str(subnet_for(config, 1.0, 0.5)),
        "elastic_test_macro_f1": ours,
        "dropped_layers_subnet": str(every_other),
        "dropped_layers_test_macro_f1": theirs,
        "elastic_wins": ours > theirs,
    }


def search_row(elastic: SavedClassifier, data: PreparedData, fitness_examples: int | None) -> dict:
    val = data.splits["val"]
    full_ms = measure_latency(elastic.model, val.ids, 32, repeats=7)
    budget = Budget(max_latency_ms=0.6 * full_ms, batch=32)
    start = time.perf_counter()
    try:
        evaluate = lambda split: evaluate_ids(
            elastic.model, split.ids, split.labels, elastic.labels, 256, elastic.device
        )  # noqa: E731
        judge = Judge(elastic.model, val, evaluate, ("macro_f1", "accuracy"))
        result = search(judge, budget, search_space(elastic), fitness_examples=fitness_examples, repeats=7)
    except AttncoachError as exc:  # timing noise on a busy machine can put every sub-net over the budget
        print(f"  search: {exc}", flush=True)
        return {
            "full_latency_ms_b32": full_ms,
            "budget_ms_b32": budget.max_latency_ms,
            "error": str(exc),
            "within_budget": False,
            "within_10_percent": False,
        }
    seconds = time.perf_counter() - start
    winner_ms = result["latency_ms"]
    row = {
        "full_latency_ms_b32": full_ms,
        "budget_ms_b32": budget.max_latency_ms,
        "search_seconds": seconds,
        **{
            k: result[k]
            for k in (
                "name",
                "subnet",
                "macro_f1",
                "accuracy",
                "latency_ms",
                "predicted_latency_ms",
                "parameters",
                "search",
                "candidates_evaluated",
            )
        },
        "within_budget": winner_ms <= budget.max_latency_ms,
        "within_10_percent": winner_ms >= 0.9 * budget.max_latency_ms,
        "width_only": result["width_only"],
        "depth_only": result["depth_only"],
        "test_macro_f1": f1(elastic, data.splits["test"], SubnetConfig.from_dict(result["subnet"])),
    }
    for key in ("width_only", "depth_only"):
        other = result[key]
        row[f"beats_{key}"] = other is None or result["macro_f1"] >= other["macro_f1"]
    print(
        f"  search: {result['name']} val macro-F1 {result['macro_f1']:.4f}, {winner_ms:.2f} ms measured "
        f"({result['predicted_latency_ms']:.2f} predicted) for a {budget.max_latency_ms:.2f} ms budget",
        flush=True,
    )
    return row


def export_rows(elastic_dir: Path, subnets: dict[str, SubnetConfig], data: PreparedData, work: Path) -> list[dict]:
    source = SavedClassifier.load(elastic_dir)
    val = data.splits["val"]
    rows = []
    for name, sub in subnets.items():
        summary = export_model_dir(elastic_dir, sub, work / f"export-{name.replace(' ', '_')}")
        exported = SavedClassifier.load(summary.out_dir)
        source.model.set_subnet(sub)
        gap = (predict(source.model, val.ids[:512]) - predict(exported.model, val.ids[:512])).abs().max().item()
        row = {
            "subnet": name,
            "parameters": summary.parameters,
            "source_parameters": summary.source_parameters,
            "active_parameters": sum(p.numel() for p in source.model.head.parameters())
            + source.model.encoder.num_parameters(active_only=True),
            "file_bytes": summary.file_bytes,
            "source_file_bytes": summary.source_file_bytes,
            "max_logit_gap": gap,
        }
        for batch in (1, 32):  # masked and exported side by side, alternating, median of each
            masked, standalone = [], []
            for _ in range(3):
                source.model.set_subnet(sub)
                masked.append(measure_latency(source.model, val.ids, batch, repeats=5))
                standalone.append(measure_latency(exported.model, val.ids, batch, repeats=5))
            row[f"masked_latency_ms_b{batch}"] = sorted(masked)[1]
            row[f"exported_latency_ms_b{batch}"] = sorted(standalone)[1]
        source.model.set_subnet(None)
        print(
            f"  export {name}: {summary.parameters:,} of {summary.source_parameters:,} parameters, "
            f"{summary.file_bytes / 1e6:.2f} of {summary.source_file_bytes / 1e6:.2f} MB, logit gap {gap:.1e}",
            flush=True,
        )
        rows.append(row)
    return rows


@torch.inference_mode()
def predict(model: TextClassifier, ids: list) -> torch.Tensor:
    model.eval()
    return torch.cat(
        [model(**{k: v for k, v in collate(ids[i : i + 64]).items() if k != "labels"}) for i in range(0, len(ids), 64)]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", choices=sorted(SETUPS), default="scratch")
    parser.add_argument("--quick", action="store_true", help="a few steps per run: proves the script works")
    parser.add_argument("--workdir", help="keep the runs here (default: a temporary folder)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="with --workdir: take runs that a previous invocation trained there (and the "
        "wall-clock it measured) and redo only the evaluations, search and export",
    )
    args = parser.parse_args()
    logging.getLogger("attncoach").setLevel(logging.WARNING)
    quick = ["train.max_steps=6", "train.eval_every=3"] if args.quick else []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        payload = run(
            args.backbone,
            work,
            quick,
            fitness_examples=256 if args.quick else FITNESS_EXAMPLES[args.backbone],
            reuse=args.reuse,
        )
    if args.reuse:  # where and when the reused runs were trained
        previous = Path(__file__).resolve().parent / "results" / f"elastic_structure_{args.backbone}.json"
        if previous.is_file():
            before = json.loads(previous.read_text())
            payload["training_conditions"] = before.get("training_conditions", before["conditions"])
    save(f"elastic_structure_{args.backbone}", payload, quick=args.quick)


def run(setup: str, work: Path, quick: list[str], fitness_examples: int | None, reuse: bool = False) -> dict[str, Any]:
    info = conditions()
    print(f"separate fine-tunes ({setup}):", flush=True)
    separate = {(w, d): train(setup, work / f"separate-w{w}-d{d}", quick, w, d, reuse) for d in DEPTHS for w in WIDTHS}
    print("elastic run:", flush=True)
    elastic_run = train(setup, work / "elastic", [*ELASTIC, *quick], reuse=reuse)
    full = separate[(1.0, 1.0)]
    elastic_dir, full_dir = work / "elastic" / "model", work / "separate-w1.0-d1.0" / "model"
    elastic = SavedClassifier.load(elastic_dir)
    data = splits_for(work / "elastic", elastic)
    cfg = load_config(work / "elastic" / "config.yaml")
    four_widths = sum(separate[(w, 1.0)]["wall_seconds"] for w in WIDTHS)
    costs = {
        "full_fine_tune_seconds": full["wall_seconds"],
        "elastic_seconds": elastic_run["wall_seconds"],
        "elastic_over_full": elastic_run["wall_seconds"] / full["wall_seconds"],
        "four_widths_separately_seconds": four_widths,
        "four_widths_over_full": four_widths / full["wall_seconds"],
        "steps_per_run": full["steps"],
    }
    print(
        f"  cost: elastic {costs['elastic_over_full']:.2f}x of one full fine-tune; four widths separately "
        f"{costs['four_widths_over_full']:.2f}x",
        flush=True,
    )
    grid = grid_comparison(elastic, separate, data.splits["test"])
    rewiring = rewiring_rows(full_dir, splits_for(work / "separate-w1.0-d1.0", SavedClassifier.load(full_dir)), cfg)
    depth = depth_rows(elastic, full_dir, data.splits["test"])
    found = search_row(elastic, data, fitness_examples)
    subnets = {"w0.50 d0.50": subnet_for(elastic.model.encoder.config, 0.5, 0.5)}
    if "subnet" in found:
        subnets = {"search winner": SubnetConfig.from_dict(found["subnet"]), **subnets}
    exports = export_rows(elastic_dir, subnets, data, work)
    return {
        "benchmark": "elastic_structure",
        "backbone": setup,
        "quick": bool(quick),
        "conditions": info,
        "reused_training": reuse,
        "cost": costs,
        "grid": grid,
        "rewiring": rewiring,
        "depth": depth,
        "search": found,
        "export": exports,
        "separate_runs": {
            f"w{w} d{d}": {k: v for k, v in r.items() if k != "metrics"} for (w, d), r in separate.items()
        },
        "elastic_run": {k: v for k, v in elastic_run.items() if k != "metrics"},
        "elastic_history": elastic_run["metrics"]["history"],
    }


if __name__ == "__main__":
    main()
