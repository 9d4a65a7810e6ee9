"""The trackers through the CLI: one coached elastic run logs to TensorBoard, W&B (offline) and MLflow,
and each library reads back the numbers of metrics.json."""

from __future__ import annotations

import json
import math
import sys

import pytest

from attncoach.cli import main
from attncoach.rundir import RunDir
from clicheck import refused
from tinydata import rewind_to_first_checkpoint, tiny_overrides, write_corpus
from trackers import READERS

BACKENDS = "log.backends=[tensorboard,wandb,mlflow]"


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> tuple[RunDir, dict]:
    """A finished tiny coached, elastic run with all three trackers (one run for the whole module)."""
    root = tmp_path_factory.mktemp("tracked")
    data = write_corpus(root / "tiny.csv")
    out = root / "run"
    args = [*tiny_overrides(data, out, 20), BACKENDS, "coach.enabled=true", "elastic.enabled=true"]
    assert main(["train", "--quiet", *args, "model.layers=2", "train.checkpoint_every=10"]) == 0
    return RunDir(out), json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize("name", sorted(READERS))
def test_every_tracker_holds_the_runs_numbers(tracked, name):
    run, metrics = tracked
    written = READERS[name](run)
    assert math.isclose(written["summary"]["test/macro_f1"], metrics["test"]["macro_f1"], rel_tol=1e-6)
    assert math.isclose(written["summary"]["val/accuracy"], metrics["val"]["accuracy"], rel_tol=1e-6)
    val_curve = [(step, round(value, 5)) for step, value in written["scalars"]["val/macro_f1"]]
    assert val_curve == [(h["step"], h["val_macro_f1"]) for h in metrics["history"]]
    assert [step for step, _ in written["scalars"]["train/loss"]] == [5, 10, 15, 20]  # log.every=5
    coached = {"train/lr_scale", "train/accumulation", "train/dropout", "train/weight_decay", "train/update_ratio"}
    assert coached | {"val/attention_entropy/layer0", "val/macro_f1_smallest"} <= set(written["scalars"])
    assert written["params"]["train.max_steps"] in (20, 20.0, "20") and written["params"]["log.every"] in (5, 5.0, "5")
    figures = ["figures/attention_0", "figures/attention_1", "figures/confusion_test", "figures/subnets"]
    assert sorted(written["images"]) == figures


def test_the_trackers_ids_are_kept_for_a_resume_which_continues_the_same_runs(tracked):
    run, metrics = tracked
    ids = json.loads((run.path / "loggers.json").read_text())
    assert set(ids) == {"wandb", "mlflow"} and READERS["mlflow"](run)["id"] == ids["mlflow"]
    (wandb_dir,) = run.path.glob("wandb/offline-run-*")
    assert wandb_dir.name.endswith(ids["wandb"])
    rewind_to_first_checkpoint(run.path)  # from here on the shared run is the resumed one
    assert main(["train", "--quiet", "--resume", str(run.path)]) == 0
    assert json.loads((run.path / "loggers.json").read_text()) == ids
    resumed = READERS["mlflow"](run)  # still one MLflow run, finished again
    assert [step for step, _ in resumed["scalars"]["val/macro_f1"]] == [10, 20, 20]  # steps 20 logged twice
    assert all(p.name.endswith(ids["wandb"]) for p in run.path.glob("wandb/offline-run-*"))


@pytest.mark.parametrize("name", ["wandb", "mlflow"])
def test_a_tracker_whose_library_is_missing_is_refused_before_anything_is_written(
    tiny_csv, tmp_path, capsys, monkeypatch, name
):
    monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed
    out = tmp_path / "run"
    argv = ["train", "--quiet", *tiny_overrides(tiny_csv, out, 10), f"log.backends=[tensorboard, {name}]"]
    refused(capsys, argv, f"pip install 'attncoach[{name}]'", one_line=True)
    assert not out.exists()


def test_an_unknown_tracker_is_refused_with_the_choices(tiny_csv, tmp_path, capsys):
    argv = ["train", *tiny_overrides(tiny_csv, tmp_path / "run", 10), "log.backends=[tensorbord]"]
    refused(capsys, argv, "log.backends", "tensorboard, wandb, mlflow", "'tensorbord'", one_line=True)


def test_a_run_goes_on_when_a_tracker_fails_midway(tiny_csv, tmp_path, capsys, monkeypatch):
    from attncoach.train.loggers import MlflowLogger

    def full_disk(self, step, values):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(MlflowLogger, "log_scalars", full_disk)
    out = tmp_path / "run"
    assert main(["train", *tiny_overrides(tiny_csv, out, 10), "log.backends=[tensorboard,mlflow]"]) == 0
    err = capsys.readouterr().err
    assert err.count("logger mlflow failed ([Errno 28] No space left on device): it is dropped") == 1
    assert (out / "metrics.json").is_file() and READERS["tensorboard"](RunDir(out))["summary"]
