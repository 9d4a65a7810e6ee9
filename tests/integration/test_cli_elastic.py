"""Supernet training through the CLI: elastic.enabled, what it saves, resume, pretrained rewiring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attncoach.cli import main
from tinydata import rewind_to_first_checkpoint, tiny_overrides, without_times


def _elastic_args(tiny_csv: Path, out: Path, steps: int = 60, *extra: str) -> list[str]:
    keep = [a for a in tiny_overrides(tiny_csv, out, steps) if not a.startswith(("model.layers", "model.heads"))]
    return [
        "train",
        "--quiet",
        *keep,
        "model.layers=2",
        "model.heads=4",
        "elastic.enabled=true",
        "elastic.widths=[0.25, 0.5, 1.0]",
        "train.checkpoint_every=20",
        *extra,
    ]


def test_elastic_run_trains_the_smallest_subnet_too(tiny_csv, tmp_path, capsys):
    out = tmp_path / "elastic"
    assert main(_elastic_args(tiny_csv, out, 80)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    elastic = metrics["elastic"]
    assert elastic["smallest"] == "layers=0 heads=1,1 ffn=8,8"
    assert elastic["smallest_parameters"] < elastic["full_parameters"]
    assert elastic["test_smallest"]["macro_f1"] > 0.6, elastic  # far above chance: the small sub-net learned
    assert metrics["test"]["macro_f1"] > 0.6
    for entry in metrics["history"]:
        assert entry["val_selection"] == pytest.approx(
            (entry["val_macro_f1"] + entry["val_macro_f1_smallest"]) / 2, abs=1e-5
        )
    saved = json.loads((out / "model/model_config.json").read_text())
    assert saved["elastic"] == {
        "widths": [0.25, 0.5, 1.0],
        "depths": [0.5, 1.0],
        "ffn_widths": None,
        "per_layer": False,
    }
    capsys.readouterr()
    assert main(["eval", str(out), "--json", "--width", "0.25", "--depth", "0.5"]) == 0
    smallest = json.loads(capsys.readouterr().out)
    assert smallest["macro_f1"] == pytest.approx(elastic["test_smallest"]["macro_f1"])
    for argv in (["--width", "0.2"], ["--depth", "0.4"]):
        assert main(["eval", str(out), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "outside the trained space" in err[0], err


def test_elastic_run_resumes_to_the_same_result(tiny_csv, tmp_path):
    out = tmp_path / "run"
    assert main(_elastic_args(tiny_csv, out, 60, "elastic.per_layer=true", "elastic.distill=hidden")) == 0
    reference = json.loads((out / "metrics.json").read_text())
    rewind_to_first_checkpoint(out)
    assert main(["train", "--quiet", "--resume", str(out)]) == 0
    resumed, reference = without_times(json.loads((out / "metrics.json").read_text())), without_times(reference)
    for key in ("test", "val", "history", "elastic"):
        assert resumed[key] == reference[key], key


def test_elastic_fine_tuning_of_a_pretrained_backbone_rewires_first(tiny_csv, tiny_bert, tmp_path, capsys):
    out = tmp_path / "bert"
    keep = [a for a in tiny_overrides(tiny_csv, out, 40) if not a.startswith(("model.", "data.vocab"))]
    assert (
        main(
            [
                "train",
                *keep,
                f"model.backbone={tiny_bert}",
                "train.lr=1e-3",
                "elastic.enabled=true",
                "elastic.rewire_batches=4",
            ]
        )
        == 0
    )
    assert "rewired heads and FFN neurons by importance over 4 training batches" in capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["elastic"]["smallest"] == "layers=0 heads=1,1 ffn=16,16"
    assert metrics["test"]["macro_f1"] > 0.5
