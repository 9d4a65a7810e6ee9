"""Train RecBole's SASRec on a leave-one-out split given as RecBole benchmark files (run in RecBole's own venv).

Started by ``bench/next_item_baselines.py`` with the python of a separate virtual environment that
holds the full ``recbole`` package (see that script's docstring for the install commands); it never
runs in attncoach's venv and imports nothing of attncoach except ``attncoach/tasks/ranking.py``,
loaded by file path (it needs only numpy and torch), so that early stopping ranks exactly as the
reported metrics do.

Input, in ``--work``:

- ``ml100k-loo/ml100k-loo.{train,valid,test}.inter``: RecBole benchmark files, one row per
  (user, prefix, target) with the fields ``user_id:token``, ``item_id_list:token_seq`` (the last
  ``MAX_ITEM_LIST_LENGTH`` items of the prefix) and ``item_id:token``; tokens are attncoach's
  1-based item indices. RecBole neither re-splits nor re-orders benchmark files, and sequential
  datasets given as benchmark files are not augmented, so the split is exactly the one written.
- ``split.npz``: ``{val,test}_exclude_flat`` / ``{val,test}_exclude_offsets`` (the full prefixes
  h[:-2] and h[:-1] of every user, to exclude from the full ranking) and ``{val,test}_target``.

Output, in ``--work``: ``scores_val.npy`` and ``scores_test.npy`` (float32, (U, V + 1), rows in
attncoach's user order, column ``i`` the score of item index ``i``, column 0 padding) of the model
with the best val NDCG@10, and ``result.json`` (epochs, per-epoch val NDCG@10 and loss, seconds,
RecBole's own evaluation of the same model, versions, the resolved settings).

Training is RecBole's: its ``Trainer._train_epoch`` (Adam, its batches and shuffling, SASRec's CE
loss). Only the epoch loop is ours: after every epoch the val NDCG@10 is computed with
attncoach's ``ranks_full`` (history h[:-2] excluded) instead of RecBole's full-sort evaluation,
which for sequential models masks no history at all (``FullSortEvalDataLoader`` returns no
history index when ``MODEL_TYPE`` is sequential); the best epoch's weights are kept in memory
(no checkpoint file, so no ``torch.load`` of a pickled RecBole checkpoint). Training stops at
``--max-epochs``, after ``--patience`` epochs without a better val NDCG@10, or at the first epoch
end past ``--minutes`` of training (``stopped_by`` says which).

Workaround: importing ``recbole.model.sequential_recommender`` imports ``sine.py``, which calls
``torch.autograd.set_detect_anomaly(True)`` at module level (recbole 1.2.1, line 25); anomaly mode
checks every backward output for NaN and costs about a third of a training step here. It is
switched off again after the import; it changes no number.

    /tmp/recbole-venv/bin/python bench/recbole_sasrec_driver.py --work DIR --ranking src/attncoach/tasks/ranking.py
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

DATASET = "ml100k-loo"
MAX_ITEM_LIST_LENGTH = 50


def load_ranking(path: Path) -> ModuleType:
    """attncoach's ``ranking.py``, loaded by file path (the attncoach package needs more than this venv has)."""
    spec = importlib.util.spec_from_file_location("attncoach_ranking", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def recbole_settings(work: Path, max_epochs: int, seed: int, device: str = "cpu") -> dict[str, Any]:
    """RecBole's config: SASRec's defaults (properties/model/SASRec.yaml) on the benchmark files in ``work``."""
    return {
        "data_path": str(work),
        "checkpoint_dir": str(work / "saved"),
        "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id_list", "item_id"]},
        "alias_of_item_id": ["item_id_list"],  # one vocabulary for targets and prefixes
        "MAX_ITEM_LIST_LENGTH": MAX_ITEM_LIST_LENGTH,
        "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["Hit", "NDCG", "MRR"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "train_neg_sample_args": None,  # required by loss_type CE
        "epochs": max_epochs,
        "seed": seed,
        "reproducibility": True,
        "use_gpu": device == "cuda",
        "show_progress": False,
        "state": "WARNING",
        "log_wandb": False,
    }


def read_split(path: Path) -> dict[str, Any]:
    """Targets and exclusion lists of val and test, from ``split.npz``."""
    data = np.load(path)
    split = {}
    for name in ("val", "test"):
        flat, offsets = data[f"{name}_exclude_flat"], data[f"{name}_exclude_offsets"]
        split[name] = {
            "target": data[f"{name}_target"],
            "exclude": [flat[start:end] for start, end in zip(offsets[:-1], offsets[1:])],
        }
    return split


@torch.no_grad()
def score_all(model: torch.nn.Module, dataset: Any, num_items: int, batch_size: int = 1024) -> np.ndarray:
    """SASRec's scores of every item for every row of ``dataset``, in attncoach's indices, rows by user.

    Returns:
        float32 (U, num_items + 1): row ``u`` for attncoach user ``u``, column ``i`` for item index ``i``.
    """
    model.eval()
    inter = dataset.inter_feat
    item_tokens = dataset.field2id_token["item_id"]  # RecBole id -> token ("[PAD]" at 0)
    user_tokens = dataset.field2id_token["user_id"]
    column_of = np.zeros(num_items + 1, dtype=np.int64)
    for recbole_id, token in enumerate(item_tokens):
        if token != "[PAD]":
            column_of[int(token)] = recbole_id
    users = np.array([int(user_tokens[u]) for u in inter["user_id"].numpy()])
    out = np.full((len(users), num_items + 1), -np.inf, dtype=np.float32)
    for start in range(0, len(users), batch_size):
        batch = inter[start : start + batch_size].to(next(model.parameters()).device)
        scores = model.full_sort_predict(batch).cpu().numpy()  # (B, RecBole items)
        out[users[start : start + batch_size], 1:] = scores[:, column_of[1:]]
    return out


def full_ndcg(ranking: ModuleType, scores: np.ndarray, case: dict[str, Any]) -> float:
    """NDCG@10 of the full ranking, the case's prefix excluded (attncoach's protocol)."""
    ranks = ranking.ranks_full(torch.from_numpy(scores), case["target"], case["exclude"])
    return ranking.ranking_metrics(ranks, k=10)["ndcg@10"]


def train(args: argparse.Namespace) -> dict[str, Any]:
    """RecBole's SASRec, early-stopped on val NDCG@10; writes the best model's scores."""
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.utils import get_trainer, init_logger, init_seed

    torch.autograd.set_detect_anomaly(False)  # set True by recbole/model/sequential_recommender/sine.py on import
    torch.set_num_threads(args.threads)
    ranking = load_ranking(args.ranking)
    split = read_split(args.work / "split.npz")
    start = time.perf_counter()
    settings = recbole_settings(args.work, args.max_epochs, args.seed, args.device)
    config = Config(model="SASRec", dataset=DATASET, config_dict=settings)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    num_items = max(int(t) for t in dataset.field2id_token["item_id"] if t != "[PAD]")
    model = SASRec(config, train_data.dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    trainer.eval_collector.data_collect(train_data)

    history, best, best_ndcg, since_best, stopped_by = [], None, -1.0, 0, "max_epochs"
    train_start = time.perf_counter()
    for epoch in range(args.max_epochs):
        epoch_start = time.perf_counter()
        loss = float(trainer._train_epoch(train_data, epoch))
        ndcg = full_ndcg(ranking, score_all(model, valid_data.dataset, num_items), split["val"])
        history.append(
            {"epoch": epoch, "loss": loss, "val_ndcg@10": ndcg, "seconds": time.perf_counter() - epoch_start}
        )
        print(f"epoch {epoch}: loss {loss:.2f}  val ndcg@10 {ndcg:.4f}", file=sys.stderr, flush=True)
        if ndcg > best_ndcg:
            best, best_ndcg, since_best = copy.deepcopy(model.state_dict()), ndcg, 0
        else:
            since_best += 1
        if since_best >= args.patience:
            stopped_by = "early_stopping"
            break
        if epoch + 1 < args.max_epochs and time.perf_counter() - train_start > 60 * args.minutes:
            stopped_by = "time_budget"
            break
    model.load_state_dict(best)
    np.save(args.work / "scores_val.npy", score_all(model, valid_data.dataset, num_items))
    np.save(args.work / "scores_test.npy", score_all(model, test_data.dataset, num_items))
    seconds = time.perf_counter() - start
    # RecBole's own full-sort evaluation of the same weights (no history masked for sequential models)
    recbole_own = {
        name: {key: float(value) for key, value in trainer.evaluate(data, load_best_model=False).items()}
        for name, data in (("val", valid_data), ("test", test_data))
    }
    import recbole

    return {
        "epochs_run": len(history),
        "stopped_by": stopped_by,
        "best_epoch": max(history, key=lambda row: row["val_ndcg@10"])["epoch"],
        "history": history,
        "seconds": seconds,
        "recbole_own_eval": recbole_own,
        "train_rows": len(train_data.dataset),
        "settings": {
            key: config[key]
            for key in (
                "n_layers",
                "n_heads",
                "hidden_size",
                "inner_size",
                "hidden_dropout_prob",
                "attn_dropout_prob",
                "hidden_act",
                "layer_norm_eps",
                "initializer_range",
                "loss_type",
                "MAX_ITEM_LIST_LENGTH",
                "learning_rate",
                "learner",
                "train_batch_size",
                "weight_decay",
                "seed",
            )
        }
        | {
            "max_epochs": args.max_epochs,
            "patience": args.patience,
            "minutes": args.minutes,
            "threads": args.threads,
            "device": str(config["device"]),
        },
        "versions": {
            "recbole": recbole.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="folder with the benchmark files and split.npz")
    parser.add_argument("--ranking", type=Path, required=True, help="path of attncoach/tasks/ranking.py")
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=5, help="epochs without a better val NDCG@10 before stopping")
    parser.add_argument("--minutes", type=float, default=10.0, help="no new epoch after this much training")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2020)
    args = parser.parse_args()
    result = train(args)
    (args.work / "result.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
