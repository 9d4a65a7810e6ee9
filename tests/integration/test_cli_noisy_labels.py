"""Noisy labels end to end: injected flips, detection scored against them, clean, and the noise-robust switches."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from attncoach.cli import main
from clicheck import digest, refused
from tinydata import (
    make_interactions,
    rewind_to_first_checkpoint,
    tiny_image_overrides,
    tiny_next_item_overrides,
    tiny_overrides,
    without_times,
)

NOISE = "data.label_noise.rate=0.2"


def _train(tiny_csv: Path, out: Path, *extra: str, steps: int = 60) -> dict:
    assert main(["train", "--quiet", *tiny_overrides(tiny_csv, out, steps), *extra]) == 0
    return json.loads((out / "metrics.json").read_text())


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]


@pytest.fixture
def noisy_run(tiny_csv, tmp_path) -> Path:
    out = tmp_path / "noisy"
    _train(tiny_csv, out, NOISE, "data.label_noise.kind=confusion", "data.label_noise.seed=3")
    return out


def test_flips_are_only_in_train_recorded_and_seen_by_the_model(noisy_run, tiny_csv, tmp_path):
    noise = json.loads((noisy_run / "label_noise.json").read_text())
    rows = _rows(noisy_run)
    assert noise["kind"] == "confusion" and noise["flipped"] == round(0.2 * len(rows))
    for flip in noise["flips"]:
        row = rows[flip["index"]]
        assert row["label"] == flip["noisy_label"] != flip["label"] and row["line"] == flip["line"]
    with open(tiny_csv, newline="") as fh:
        source = {number: row["label"] for number, row in enumerate(csv.DictReader(fh), 2)}
    flipped_lines = {flip["line"] for flip in noise["flips"]}
    assert all(r["label"] == source[r["line"]] for r in rows if r["line"] not in flipped_lines)
    clean = tmp_path / "clean"
    _train(tiny_csv, clean, steps=1)
    noisy_stats = json.loads((noisy_run / "data_stats.json").read_text())["label_counts"]
    clean_stats = json.loads((clean / "data_stats.json").read_text())["label_counts"]
    assert noisy_stats["val"] == clean_stats["val"] and noisy_stats["test"] == clean_stats["test"]
    assert not (clean / "label_noise.json").exists()
    again = tmp_path / "again"  # the same seed flips the same examples
    _train(tiny_csv, again, NOISE, "data.label_noise.kind=confusion", "data.label_noise.seed=3", steps=1)
    assert json.loads((again / "label_noise.json").read_text())["flips"] == noise["flips"]


def test_rate_zero_records_no_flip(tiny_csv, tmp_path):
    out = tmp_path / "run"
    _train(tiny_csv, out, "data.label_noise.rate=0", steps=1)
    assert json.loads((out / "label_noise.json").read_text())["flips"] == []


def test_suspects_are_scored_against_the_flips(noisy_run, capsys):
    capsys.readouterr()
    assert main(["examples", str(noisy_run), "--suspect", "10", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    ranked, detection = lines[:-1], lines[-1]["detection"]
    assert len(ranked) == 10 and all("aum" in r for r in ranked)
    assert [r["mean_loss"] for r in ranked] == sorted((r["mean_loss"] for r in ranked), reverse=True)
    flipped = {f["index"] for f in json.loads((noisy_run / "label_noise.json").read_text())["flips"]}
    assert detection["by"] == "loss" and detection["flipped"] == len(flipped)
    assert detection["precision_at_k"] == sum(r["index"] in flipped for r in ranked) / 10
    assert detection["average_precision"] > 0.3, "far above the 0.2 of a random ranking on this learnable corpus"
    assert main(["examples", str(noisy_run), "--suspect", "5", "--by", "aum"]) == 0
    assert "ranked by aum" in capsys.readouterr().out
    assert main(["examples", str(noisy_run), "--suspect", "5", "--by", "forgetting"]) == 0
    out = capsys.readouterr().out
    assert "against the" in out and "ranked by forgetting" in out and "average precision" in out


def test_clean_drops_or_relabels_suspects_and_never_overwrites(noisy_run, tiny_csv, tmp_path, capsys):
    dropped = tmp_path / "dropped.csv"
    assert main(["clean", str(noisy_run), "--out", str(dropped), "--drop", "10"]) == 0
    assert "10 most suspect training examples by loss dropped" in capsys.readouterr().out
    with open(dropped, newline="") as fh:
        written = list(csv.DictReader(fh))
    rows = _rows(noisy_run)
    train = [r for r in written if r["split"] == "train"]
    assert len(train) == len(rows) - 10 and {r["split"] for r in written} == {"train", "val", "test"}
    relabelled = tmp_path / "relabelled.jsonl"
    assert main(["clean", str(noisy_run), "--out", str(relabelled), "--relabel", "10"]) == 0
    written = [json.loads(line) for line in relabelled.read_text().splitlines()]
    changed = [(w, r) for w, r in zip(written, rows) if w["label"] != r["label"]]
    assert 0 < len(changed) <= 10 and all(w["text"] == r["text"] for w, r in zip(written, rows))
    before = digest(tmp_path)
    refused(capsys, ["clean", str(noisy_run), "--out", str(dropped), "--drop", "3"], "exists")
    refused(capsys, ["clean", str(noisy_run), "--out", str(tmp_path / "x.csv"), "--drop", "-1"], "--drop")
    refused(capsys, ["clean", str(noisy_run), "--out", str(tmp_path / "x.csv"), "--relabel", "100000"], "more than")
    refused(capsys, ["examples", str(noisy_run), "--suspect", "-2"], "--suspect")
    refused(capsys, ["examples", str(noisy_run), "--suspect", "2", "--by", "margin"], "unknown suspicion score")
    assert digest(tmp_path) == before, "nothing written"
    retrained = tmp_path / "retrained"  # the cleaned file keeps the run's val and test
    _train(dropped, retrained, "data.split_column=split", steps=1)
    stats = json.loads((retrained / "data_stats.json").read_text())["splits"]
    assert stats == {"train": len(rows) - 10, "val": 24, "test": 24}


def test_small_loss_selection_and_dropped_suspects_resume_exactly(tiny_csv, tmp_path):
    out = tmp_path / "run"
    extra = (
        NOISE,
        "curriculum.small_loss.forget_rate=0.3",
        "curriculum.small_loss.ramp_epochs=1",
        "curriculum.suspects.after_epochs=1",
        "curriculum.suspects.fraction=0.2",
        "train.checkpoint_every=20",
    )
    reference = _train(tiny_csv, out, *extra)
    suspects = reference["noisy_labels"]["suspects"]
    assert suspects["suspects"] == round(0.2 * len(_rows(out))) and suspects["chosen_at_step"] >= 12
    assert 0 <= suspects["precision"] <= 1 and reference["noisy_labels"]["small_loss"]["forget_rate"] == 0.3
    scalars = [json.loads(line) for line in (out / "scalars.jsonl").read_text().splitlines()]
    kept = [s["values"]["keep_smallest"] for s in scalars if "keep_smallest" in s.get("values", {})]
    assert kept and min(kept) == pytest.approx(0.7) and max(kept) > 0.7
    record = (out / "examples.jsonl").read_text()
    rewind_to_first_checkpoint(out)
    assert main(["train", "--quiet", "--resume", str(out)]) == 0
    assert without_times(json.loads((out / "metrics.json").read_text())) == without_times(reference)
    assert (out / "examples.jsonl").read_text() == record


def test_downweighted_suspects_change_training(tiny_csv, tmp_path):
    plain = _train(tiny_csv, tmp_path / "plain", NOISE, steps=40)
    weighted = _train(
        tiny_csv,
        tmp_path / "weighted",
        NOISE,
        "curriculum.suspects.after_epochs=0.5",
        "curriculum.suspects.action=downweight",
        "curriculum.suspects.weight=0.1",
        steps=40,
    )
    assert weighted["noisy_labels"]["suspects"]["action"] == "downweight"
    assert weighted["val"]["loss"] != plain["val"]["loss"]


def test_image_classification_takes_label_noise(tmp_path, capsys):
    out = tmp_path / "images"
    overrides = tiny_image_overrides(out, steps=4)
    assert main(["train", "--quiet", *overrides, NOISE, "curriculum.small_loss.forget_rate=0.2"]) == 0
    noise = json.loads((out / "label_noise.json").read_text())
    rows = _rows(out)
    assert noise["flipped"] == round(0.2 * len(rows))
    assert all(rows[f["index"]]["label"] == f["noisy_label"] for f in noise["flips"])
    refused(capsys, ["clean", str(out), "--out", str(tmp_path / "x.csv"), "--drop", "5"], "image_classification")
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("data.label_noise.rate=1", ("data.label_noise.rate", "[0, 1)")),
        ("data.label_noise.rate=-0.1", ("data.label_noise.rate",)),
        ("data.label_noise.kind=pairs", ("data.label_noise.kind", "uniform")),
        ("curriculum.suspects.fraction=1.5", ("curriculum.suspects.fraction",)),
        ("curriculum.suspects.action=delete", ("curriculum.suspects.action",)),
        ("curriculum.small_loss.forget_rate=0", ("curriculum.small_loss.forget_rate",)),
        ("curriculum.suspects.after_epochs=0", ("curriculum.suspects.after_epochs", "warm-up")),
    ],
)
def test_bad_noise_settings_are_one_line_and_write_nothing(tiny_csv, tmp_path, capsys, override, words):
    out = tmp_path / "run"
    refused(capsys, ["train", "--quiet", *tiny_overrides(tiny_csv, out, 2), NOISE, override], *words)
    assert not out.exists()


def test_a_task_without_class_labels_refuses_label_noise(tmp_path, capsys):
    data = make_interactions(tmp_path / "interactions.tsv")
    out = tmp_path / "run"
    for override in (NOISE, "curriculum.small_loss.forget_rate=0.2"):
        argv = ["train", "--quiet", *tiny_next_item_overrides(data, out, 2), override]
        refused(capsys, argv, override.split("=")[0].rsplit(".", 1)[0], "class labels")
    assert not out.exists()
