"""model.backbone=RUN/model: a new run starts from your own attncoach model (encoder, tokenizer, and head)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from attncoach.cli import main
from attncoach.rundir import RunDir
from attncoach.train.recipe import Recipe
from attncoach.train.settings import load_run_config
from tinydata import (
    make_interactions,
    rewind_to_first_checkpoint,
    tiny_next_item_overrides,
    tiny_overrides,
    without_times,
)


@pytest.fixture
def first(tiny_csv, tmp_path) -> Path:
    """A finished tiny run: the model to start from."""
    out = tmp_path / "first"
    assert main(["train", "--quiet", *tiny_overrides(tiny_csv, out, 30), "model.layers=2"]) == 0
    return out


def _warm(data: Path, out: Path, backbone: Path, steps: int = 20) -> list[str]:
    keep = [a for a in tiny_overrides(data, out, steps) if not a.startswith(("model.", "data.vocab", "train.lr"))]
    return [*keep, f"model.backbone={backbone}"]


def test_a_warm_start_begins_with_the_first_models_weights(first, tiny_csv, tmp_path):
    cfg = load_run_config(None, _warm(tiny_csv, tmp_path / "second", first / "model"))
    recipe = Recipe(cfg, RunDir(cfg.output_dir), quiet=True)
    recipe.setup()
    try:
        start = recipe.model.state_dict()
        trained = load_file(first / "model/model.safetensors")
        assert set(start) == set(trained)
        for key, tensor in trained.items():
            assert torch.equal(start[key].cpu(), tensor), key  # encoder and head (the same labels)
    finally:
        recipe.close()


def test_warm_start_end_to_end_and_resume(first, tiny_csv, tmp_path, capsys):
    out = tmp_path / "second"
    capsys.readouterr()
    assert main(["train", *_warm(tiny_csv, out, first / "model", steps=30)]) == 0
    err = capsys.readouterr().err
    assert "(attncoach)" in err and "its task head is kept too" in err, err
    assert (out / "model/tokenizer.json").read_text() == (first / "model/tokenizer.json").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    first_metrics = json.loads((first / "metrics.json").read_text())
    assert metrics["history"][0]["val_macro_f1"] >= first_metrics["val"]["macro_f1"] - 0.1  # not from scratch
    assert main(["eval", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["macro_f1"] == pytest.approx(metrics["test"]["macro_f1"])
    assert main(["predict", str(out), "the service was wonderful excellent best"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] in {"negative", "neutral", "positive"}

    rewind_to_first_checkpoint(out)
    assert main(["train", "--quiet", "--resume", str(out)]) == 0
    assert without_times(json.loads((out / "metrics.json").read_text())) == without_times(metrics)


def test_other_labels_get_a_new_head_on_the_same_encoder(first, tiny_csv, tmp_path, capsys):
    binary = tmp_path / "binary.csv"
    with open(tiny_csv, newline="", encoding="utf-8") as src, open(binary, "w", newline="", encoding="utf-8") as dst:
        rows = list(csv.reader(src))
        csv.writer(dst).writerows(
            [rows[0], *([text, "good" if label == "positive" else "other"] for text, label in rows[1:])]
        )
    out = tmp_path / "binary-run"
    capsys.readouterr()
    assert main(["train", *_warm(binary, out, first)]) == 0  # the run directory works as well
    assert "a new task head (its 3 labels are not the data's 2" in capsys.readouterr().err
    assert json.loads((out / "model/labels.json").read_text()) == ["good", "other"]
    assert json.loads((out / "metrics.json").read_text())["test"]["n"] == 24


def test_models_that_cannot_be_a_backbone(tiny_csv, tmp_path, capsys):
    items = tmp_path / "items"
    assert main(["train", "--quiet", *tiny_next_item_overrides(make_interactions(tmp_path / "i.tsv"), items, 10)]) == 0
    capsys.readouterr()
    for backbone, words in ((items, "holds a next_item model"), (tmp_path / "nothing", "not found")):
        out = tmp_path / "refused"
        assert main(["train", "--quiet", *_warm(tiny_csv, out, backbone)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and len(err.splitlines()) == 1 and words in err, err
        assert not out.exists()
