"""Task image_classification through the real CLI: train -> eval -> predict -> resume after kill -> subnets ->
search -> export (int8, ONNX), on the built-in 8x8 digits and on an image folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from attncoach.cli import main
from clicheck import refused
from tinydata import kill_once_checkpointed, tiny_image_overrides, without_times, write_image_folder

ELASTIC = ["elastic.enabled=true", "elastic.widths=[0.5,1.0]", "elastic.depths=[0.5,1.0]"]


def _train(out: Path, steps: int = 150, *extra: str) -> dict:
    assert main(["train", "--quiet", *tiny_image_overrides(out, steps), *extra]) == 0
    return json.loads((out / "metrics.json").read_text())


def _digit_png(path: Path, index: int, size: int = 8) -> tuple[Path, str]:
    """Digit ``index`` of scikit-learn's digits as a PNG (``size`` other than 8: a wrong size), and its label."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.rint(digits.images[index] * 255 / 16).astype(np.uint8)
    Image.fromarray(pixels).resize((size, size)).save(path)
    return path, str(digits.target[index])


@pytest.fixture(scope="module")
def elastic_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("images") / "run"
    _train(out, 150, *ELASTIC)
    return out


def test_train_eval_predict_examples(elastic_run, tmp_path, capsys):
    metrics = json.loads((elastic_run / "metrics.json").read_text())
    assert metrics["task"] == "image_classification" and metrics["primary"] == "accuracy"
    test = metrics["test"]
    majority = max(test["per_class"][c]["support"] for c in test["labels"]) / test["n"]
    assert test["n"] == 180 and test["accuracy"] >= majority + 0.4, (test["accuracy"], majority)
    assert {"macro_f1", "ece", "confusion"} <= set(test) and "smallest" in json.dumps(metrics["elastic"])
    model = elastic_run / "model"
    assert {"labels.json", "model_config.json", "model.safetensors", "calibration.json"} <= {
        p.name for p in model.iterdir()
    }
    assert (elastic_run / "report.html").is_file() and (elastic_run / "examples.jsonl").is_file()
    capsys.readouterr()

    assert main(["eval", str(elastic_run), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["accuracy"] == pytest.approx(test["accuracy"])

    right = 0
    for index in range(10):
        png, label = _digit_png(tmp_path / f"d{index}.png", index)
        assert main(["predict", str(elastic_run), str(png)]) == 0
        row = json.loads(capsys.readouterr().out)
        assert (
            row["image"] == str(png) and 0 < row["probability"] <= 1 and set(row["probabilities"]) == set("0123456789")
        )
        right += row["label"] == label
    assert right >= 5

    assert main(["examples", str(elastic_run), "--hardest", "3", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3 and all(r["text"].startswith("digits #") for r in rows)


def test_bad_images_are_refused_and_nothing_is_written(elastic_run, tmp_path, capsys):
    out = tmp_path / "predictions.jsonl"
    good, _ = _digit_png(tmp_path / "good.png", 0)
    wrong, _ = _digit_png(tmp_path / "big.png", 0, size=12)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    run = str(elastic_run)
    refused(capsys, ["predict", run, str(good), str(wrong), "--output", str(out)], "12x12 grey", "8x8 grey")
    refused(capsys, ["predict", run, str(junk), "--output", str(out)], "not a readable image")
    refused(capsys, ["predict", run, str(tmp_path / "nope.png")], "image not found")
    refused(capsys, ["predict", run, "--input", str(tmp_path / "empty")], "input file not found")
    assert not out.exists()
    refused(capsys, ["serve", run, "--port", "0"], "image_classification", "does not serve")
    refused(capsys, ["export", run, "--family", "--out", str(tmp_path / "family")], "does not serve image models")
    assert not (tmp_path / "family").exists()


def test_resume_after_kill_gives_the_same_metrics(tmp_path):
    steps, extra = 120, ["data.max_shift=1", "train.checkpoint_every=7"]
    reference = _train(tmp_path / "ref", steps, *extra)
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "attncoach", "train", "--quiet", *tiny_image_overrides(out, steps), *extra]
    kill_once_checkpointed(args, out, 40)
    assert not (out / "metrics.json").exists()
    assert main(["train", "--quiet", "--resume", str(out)]) == 0
    resumed = json.loads((out / "metrics.json").read_text())
    assert without_times(resumed) == without_times(reference)


def test_subnets_search_and_export(elastic_run, tmp_path, capsys):
    run = str(elastic_run)
    assert main(["subnets", run, "--batch-sizes", "1", "4", "--out", str(tmp_path / "subnets.json")]) == 0
    table = json.loads((tmp_path / "subnets.json").read_text())
    assert table["metrics"] == ["accuracy", "macro_f1"] and len(table["rows"]) == 4
    assert all(0 <= row["accuracy"] <= 1 for row in table["rows"])
    capsys.readouterr()
    assert main(["search", run, "--max-params", "1e9", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == ["accuracy", "macro_f1"]

    png, _ = _digit_png(tmp_path / "d3.png", 3)
    half = tmp_path / "half"
    assert main(["export", run, "--width", "0.5", "--out", str(half)]) == 0
    capsys.readouterr()
    assert main(["predict", str(half), str(png)]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert main(["predict", run, "--width", "0.5", str(png)]) == 0
    masked = json.loads(capsys.readouterr().out)
    assert exported["label"] == masked["label"] and exported["probability"] == pytest.approx(masked["probability"])

    pytest.importorskip("onnxruntime")
    small = tmp_path / "int8"
    assert main(["export", run, "--quantize", "int8", "--onnx", "--out", str(small)]) == 0
    printed = capsys.readouterr().out
    assert "int8 torch: max |Δ logits|" in printed and "int8 onnx" in printed and "accuracy" in printed
    parity = json.loads((small / "parity.json").read_text())
    assert all(entry["label_agreement"] >= 0.9 for entry in parity["exported"])
    assert main(["predict", str(small), str(png), "--runtime", "onnx"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] in "0123456789"


def test_an_image_folder_trains_and_predicts_a_folder(tmp_path, capsys):
    folder = write_image_folder(tmp_path / "imgs", classes=2, per_class=10)
    out = tmp_path / "run"
    args = tiny_image_overrides(out, 40, data=folder)
    assert main(["train", "--quiet", *args, "data.val_fraction=0.2", "data.test_fraction=0.2"]) == 0
    assert json.loads((out / "metrics.json").read_text())["test"]["n"] == 4
    capsys.readouterr()
    assert main(["predict", str(out), "--input", str(folder), "--output", str(tmp_path / "p.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(rows) == 20 and {r["label"] for r in rows} <= {"class0", "class1"}


def test_a_bad_image_folder_leaves_nothing_behind(tmp_path, capsys):
    folder = write_image_folder(tmp_path / "imgs", classes=1)
    out = tmp_path / "run"
    refused(capsys, ["train", "--quiet", *tiny_image_overrides(out, 5, data=folder)], "at least two classes")
    assert not out.exists()


def test_a_curriculum_trains_images_and_a_token_scorer_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    curriculum = ["curriculum.scheduler=competence", "curriculum.scorer=loss", "curriculum.probe_epochs=0.2"]
    metrics = _train(out, 60, *curriculum)
    assert metrics["examples_scored"] > 0 and json.loads((out / "difficulty.json").read_text())
    args = [*tiny_image_overrides(tmp_path / "rarity", 5), "curriculum.scheduler=competence"]
    refused(capsys, ["train", "--quiet", *args], "curriculum.scorer", "rarity reads token ids")
    assert not (tmp_path / "rarity").exists()
