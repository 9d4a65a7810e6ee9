"""A banking77-shaped intent corpus through the real CLI: many intents, quoted TSV, an official
train / dev / test split; train (elastic) -> eval -> predict -> resume after kill -> subnets -> export."""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path

import pytest

from attncoach.cli import main
from tinydata import FILLER_WORDS, kill_once_checkpointed, without_times

INTENTS = {
    "card_arrival": ["card", "arrive", "post"],
    "lost_or_stolen_card": ["lost", "stolen", "missing"],
    "top_up_failed": ["topup", "failed", "declined"],
    "exchange_rate": ["rate", "exchange", "currency"],
    "transfer_timing": ["transfer", "pending", "days"],
    "pin_blocked": ["pin", "blocked", "locked"],
    "refund_not_showing_up": ["refund", "showing", "merchant"],
    "cash_withdrawal_charge": ["atm", "withdrawal", "fee"],
    "change_pin": ["change", "new", "code"],
    "verify_my_identity": ["identity", "verify", "passport"],
    "terminate_account": ["close", "delete", "terminate"],
    "apple_pay_or_google_pay": ["apple", "google", "wallet"],
}


@pytest.fixture
def intents_tsv(tmp_path: Path) -> Path:
    """12 intents x 30 questions, split 20 / 4 / 6 by a 'split' column with banking77's names (dev = val)."""
    rng = random.Random(0)
    path = tmp_path / "intents.tsv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="\t", quoting=csv.QUOTE_ALL)
        writer.writerow(["text", "label", "split"])
        for intent, words in INTENTS.items():
            for i in range(30):
                text = " ".join(rng.sample(FILLER_WORDS, 3) + rng.sample(words, 2)) + f", please #{i}"
                writer.writerow([text, intent, "train" if i < 20 else "dev" if i < 24 else "test"])
    return path


def _overrides(data: Path, out: Path, steps: int) -> list[str]:
    return [
        f"data.path={data}",
        "data.split_column=split",
        "data.normalize=false",
        "data.vocab_size=200",
        "data.min_frequency=1",
        f"output_dir={out}",
        "model.dim=32",
        "model.heads=4",
        "model.layers=2",
        "model.ffn_dim=64",
        "train.batch_size=16",
        f"train.max_steps={steps}",
        "train.eval_every=15",
        "train.lr=5e-3",
        "train.early_stopping_patience=null",
        "train.threads=1",
        "elastic.enabled=true",
        "elastic.widths=[0.5,1.0]",
        "elastic.depths=[0.5,1.0]",
        "coach.enabled=false",
    ]


def test_intents_end_to_end(intents_tsv, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--quiet", *_overrides(intents_tsv, out, 150)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    stats = json.loads((out / "data_stats.json").read_text())
    assert stats["splits"] == {"train": 240, "val": 48, "test": 72}
    assert json.loads((out / "model" / "labels.json").read_text()) == sorted(INTENTS)
    assert metrics["test"]["accuracy"] > 0.8, metrics["test"]  # 12 intents: chance is 0.08
    capsys.readouterr()

    assert main(["eval", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert main(["predict", str(out), "my card did not arrive in the post", "the atm withdrawal fee"]) == 0
    labels = [json.loads(line)["label"] for line in capsys.readouterr().out.splitlines()]
    assert labels == ["card_arrival", "cash_withdrawal_charge"]

    assert main(["subnets", str(out), "--batch-sizes", "1", "--out", str(tmp_path / "subnets.json")]) == 0
    rows = json.loads((tmp_path / "subnets.json").read_text())["rows"]
    assert len(rows) == 4 and all(0 <= r["macro_f1"] <= 1 for r in rows)
    assert main(["export", str(out), "--width", "0.5", "--out", str(tmp_path / "half")]) == 0
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "half"), "i lost my card, it was stolen"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] in INTENTS


def test_intents_resume_after_kill(intents_tsv, tmp_path):
    steps = 240
    assert main(["train", "--quiet", *_overrides(intents_tsv, tmp_path / "ref", steps)]) == 0
    reference = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "attncoach", "train", "--quiet", *_overrides(intents_tsv, out, steps)]
    kill_once_checkpointed([*args, "train.checkpoint_every=5"], out, 60)
    assert main(["train", "--quiet", "--resume", str(out)]) == 0
    resumed = json.loads((out / "metrics.json").read_text())
    assert without_times(resumed) == without_times(reference)
