"""Augmentation on the fly through the CLI: a run that finishes, changes training, resumes exactly; refusals."""

from __future__ import annotations

import json

from attncoach.cli import main
from clicheck import refused
from tinydata import (
    make_interactions,
    rewind_to_first_checkpoint,
    tiny_next_item_overrides,
    tiny_overrides,
    without_times,
)

AUGMENT = ["augment.p=0.5", "augment.char_noise=0.2"]
FAST = ["log.report=false", "log.tensorboard=false"]


def test_an_augmented_run_finishes_differs_from_a_plain_one_and_resumes_exactly(tiny_csv, tmp_path, capsys):
    out, plain = tmp_path / "augmented", tmp_path / "plain"
    assert main(["train", *tiny_overrides(tiny_csv, out, 20), *AUGMENT, *FAST, "train.checkpoint_every=10"]) == 0
    assert "augmentation on: p 0.5; char_noise 0.2 (swap, insert, delete, keyboard)" in capsys.readouterr().err
    finished = json.loads((out / "metrics.json").read_text())
    assert finished["steps"] == 20 and 0 <= finished["test"]["macro_f1"] <= 1
    assert main(["train", "--quiet", *tiny_overrides(tiny_csv, plain, 20), *FAST]) == 0
    unaugmented = json.loads((plain / "metrics.json").read_text())
    assert [h["val_loss"] for h in finished["history"]] != [h["val_loss"] for h in unaugmented["history"]]

    rewind_to_first_checkpoint(out)  # killed after step 10: the resumed steps see the same perturbations
    assert main(["train", "--quiet", "--resume", str(out)]) == 0
    assert without_times(json.loads((out / "metrics.json").read_text())) == without_times(finished)


def test_a_task_without_texts_refuses_augmentation_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    args = tiny_next_item_overrides(make_interactions(tmp_path / "inter.tsv"), out)
    refused(capsys, ["train", *args, *AUGMENT], "augment.p", "next_item")
    assert not out.exists()
