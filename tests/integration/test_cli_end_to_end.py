"""The real CLI, end to end, on a tiny corpus: train -> eval -> predict, and resume after kill -9."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from attncoach.cli import main
from tinydata import kill_once_checkpointed, tiny_overrides, without_times


def _train(tiny_csv: Path, out: Path, steps: int = 100) -> dict:
    assert main(["train", "--quiet", *tiny_overrides(tiny_csv, out, steps)]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_train_eval_predict(tiny_csv, tmp_path, capsys):
    out = tmp_path / "run"
    metrics = _train(tiny_csv, out)
    for rel in (
        "config.yaml",
        "model/model.safetensors",
        "model/model_config.json",
        "model/tokenizer.json",
        "model/labels.json",
        "metrics.json",
        "checkpoints/latest.json",
    ):
        assert (out / rel).is_file(), rel
    assert list((out / "tb").glob("events.out.tfevents.*")), "no TensorBoard events"
    assert json.loads((out / "model/labels.json").read_text()) == ["negative", "neutral", "positive"]
    test = metrics["test"]
    assert set(test) >= {"accuracy", "macro_f1", "per_class", "confusion"}
    assert test["macro_f1"] > 0.8, test  # the words give the label away: far above chance (0.33)
    assert sum(map(sum, test["confusion"])) == test["n"] == 24
    assert metrics["steps"] == 100 and metrics["examples_seen"] == 100 * 16
    assert metrics["train_seconds"] > 0
    losses = [h["val_loss"] for h in metrics["history"]]
    assert losses[-1] < losses[0], "val loss did not go down"
    capsys.readouterr()

    assert main(["eval", str(out), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["macro_f1"] == pytest.approx(test["macro_f1"])
    assert evaluated["confusion"] == test["confusion"]
    temperature = json.loads((out / "model/calibration.json").read_text())["temperature"]
    assert evaluated["temperature"] == temperature and evaluated["ece"] == pytest.approx(test["ece"])
    assert evaluated["ece_calibrated"] == pytest.approx(metrics["calibration"]["test_ece"][1], abs=1e-5)
    assert main(["eval", str(out)]) == 0
    table = capsys.readouterr().out
    assert "ECE" in table and "calibrated" in table and "temperature" in table

    assert main(["eval", str(out / "model"), "--data", str(tiny_csv), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 240

    assert (
        main(["predict", str(out), "my flight was love excellent wonderful", "the phone is awful broken terrible"]) == 0
    )
    captured = capsys.readouterr()
    lines = [json.loads(x) for x in captured.out.splitlines()]
    assert [x["label"] for x in lines] == ["positive", "negative"]
    assert f"probabilities calibrated: softmax(logits / {temperature:g})" in captured.err
    for line in lines:
        assert abs(sum(line["probabilities"].values()) - 1) < 1e-4

    inp = tmp_path / "in.txt"
    inp.write_text("the meeting is on tuesday office\nhappy and thanks\n\n")
    result = tmp_path / "pred.jsonl"
    assert main(["predict", str(out), "--input", str(inp), "--output", str(result)]) == 0
    rows = [json.loads(x) for x in result.read_text().splitlines()]
    assert [r["text"] for r in rows] == ["the meeting is on tuesday office", "happy and thanks"]
    assert rows[0]["label"] == "neutral" and set(rows[1]["probabilities"]) == {"negative", "neutral", "positive"}


def test_saved_config_reproduces_the_run(tiny_csv, tmp_path):
    first = _train(tiny_csv, tmp_path / "a", steps=20)
    second = _train(tiny_csv, tmp_path / "b", steps=20)
    assert first["test"] == second["test"]  # seeded determinism
    a, b = load_file(tmp_path / "a/model/model.safetensors"), load_file(tmp_path / "b/model/model.safetensors")
    assert all((a[k] == b[k]).all() for k in a)


def test_resume_after_kill_gives_the_same_metrics(tiny_csv, tmp_path):
    steps = 400
    reference = _train(tiny_csv, tmp_path / "ref", steps=steps)

    out = tmp_path / "killed"
    args = [
        sys.executable,
        "-m",
        "attncoach",
        "train",
        "--quiet",
        *tiny_overrides(tiny_csv, out, steps),
        "train.checkpoint_every=7",
    ]
    kill_once_checkpointed(args, out, 100)
    assert not (out / "metrics.json").exists()

    assert main(["train", "--quiet", "--resume", str(out)]) == 0
    resumed = json.loads((out / "metrics.json").read_text())
    assert without_times(resumed) == without_times(reference)


def test_resume_before_the_first_checkpoint_starts_over(tiny_csv, tmp_path):
    out = tmp_path / "early"
    reference = _train(tiny_csv, tmp_path / "ref", steps=20)
    # a run directory as a kill right after start-up leaves it: config and model files, no checkpoint
    assert main(["train", "--quiet", *tiny_overrides(tiny_csv, out, 20)]) == 0
    for p in sorted((out / "checkpoints").rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    (out / "metrics.json").unlink()
    assert main(["train", "--quiet", "--resume", str(out)]) == 0
    assert without_times(json.loads((out / "metrics.json").read_text())) == without_times(reference)


def test_cli_module_runs_without_traceback_on_bad_input(tmp_path):
    env = {**os.environ}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "attncoach",
            "train",
            f"data.path={tmp_path / 'nope.csv'}",
            f"output_dir={tmp_path / 'o'}",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: data file not found")


def test_predict_reads_csv_and_jsonl_inputs(tiny_csv, tmp_path, capsys):
    out = tmp_path / "run"
    _train(tiny_csv, out, steps=20)
    capsys.readouterr()
    assert main(["predict", str(out), "--input", str(tiny_csv)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 240
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text('{"body": "happy thanks"}\n\n{"body": "awful late"}\n')
    assert main(["predict", str(out), "--input", str(jsonl), "--text-column", "body"]) == 0
    assert [json.loads(x)["text"] for x in capsys.readouterr().out.splitlines()] == ["happy thanks", "awful late"]
    assert main(["predict", str(out), "--input", str(jsonl)]) == 2
    assert "no field 'text'" in capsys.readouterr().err
