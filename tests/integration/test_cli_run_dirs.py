"""Where runs live: the saved config works from any directory, and default run names never collide."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import yaml

from attncoach.cli import main
from tinydata import rewind_to_first_checkpoint, tiny_overrides, without_times


def test_a_run_trained_with_relative_paths_works_from_another_directory(tiny_csv, tmp_path, monkeypatch, capsys):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    (work / "data").mkdir(parents=True)
    elsewhere.mkdir()
    shutil.copy(tiny_csv, work / "data" / "tiny.csv")
    monkeypatch.chdir(work)
    args = [*tiny_overrides(Path("data/tiny.csv"), Path("runs/rel"), 20), "train.checkpoint_every=10"]
    assert main(["train", "--quiet", *args]) == 0
    run = work / "runs" / "rel"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["path"] == str(work / "data" / "tiny.csv")
    assert saved["output_dir"] == str(run)
    finished = json.loads((run / "metrics.json").read_text())
    calibration = (run / "model" / "calibration.json").read_text()

    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["macro_f1"] == finished["test"]["macro_f1"]
    assert evaluated["ece_calibrated"] == pytest.approx(finished["calibration"]["test_ece"][1], abs=1e-5)
    assert main(["subnets", str(run), "--batch-sizes", "1", "--threads", "1"]) == 0
    rewind_to_first_checkpoint(run)
    assert main(["train", "--quiet", "--resume", str(run)]) == 0
    assert without_times(json.loads((run / "metrics.json").read_text())) == without_times(finished)
    assert (run / "model" / "calibration.json").read_text() == calibration  # refitted the same at the end
    assert list(elsewhere.iterdir()) == [], "nothing is written where the commands ran"


def test_a_local_backbone_directory_is_saved_absolute(tiny_csv, tiny_bert, tmp_path, monkeypatch):
    monkeypatch.chdir(tiny_bert.parent)
    args = [*tiny_overrides(tiny_csv, tmp_path / "bert", 2), f"model.backbone={tiny_bert.name}"]
    assert main(["train", "--quiet", *args]) == 0
    assert yaml.safe_load((tmp_path / "bert" / "config.yaml").read_text())["model"]["backbone"] == str(tiny_bert)


def test_two_runs_started_in_the_same_second_get_two_directories(tiny_csv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "strftime", lambda fmt, *args: "20240102-030405")  # the same second, twice
    args = [a for a in tiny_overrides(tiny_csv, tmp_path, 10) if not a.startswith("output_dir=")]
    assert main(["train", "--quiet", *args]) == 0
    assert main(["train", "--quiet", *args]) == 0
    runs = [json.loads(line)["run"] for line in capsys.readouterr().out.splitlines()]
    assert runs == ["runs/tiny-20240102-030405", "runs/tiny-20240102-030405-2"]
    assert all((tmp_path / run / "metrics.json").is_file() for run in runs)


def test_a_refused_run_with_a_default_name_leaves_nothing_behind(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--quiet", "data.path=missing.csv"]) == 2
    assert "data file not found" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
