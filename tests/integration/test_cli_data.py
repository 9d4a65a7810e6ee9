"""The CLI on users' own data files: typo'd labels, tiny splits, JSON arrays, a directory as data.path."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from attncoach.cli import main
from tinydata import make_corpus, tiny_overrides


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def test_typo_label_is_named_and_left_out_of_test_macro_f1(tmp_path, capsys):
    data = _write_csv(tmp_path / "typo.csv", [*make_corpus(), ("my flight was terrible and late", "negativ")])
    out = tmp_path / "run"
    assert main(["train", "--quiet", *tiny_overrides(data, out, 100)]) == 0
    err = capsys.readouterr().err
    assert "1 class has fewer than 5 examples: 'negativ' (1)" in err
    test = json.loads((out / "metrics.json").read_text())["test"]
    assert test["absent_classes"] == ["negativ"] and not test["per_class"]["negativ"]["present"]
    assert test["macro_classes"] == ["negative", "neutral", "positive"]
    assert test["macro_f1"] > 0.8, test  # averaged over 4 classes it could not exceed 0.75
    stats = json.loads((out / "data_stats.json").read_text())
    assert stats["warnings"][0].startswith("1 class has fewer than 5 examples: 'negativ'")

    assert main(["eval", str(out)]) == 0  # the table lists the absent class with support 0
    printed = capsys.readouterr().out
    assert "negativ" in printed and "over 3 of 4 classes (absent here: negativ)" in " ".join(printed.split())
    assert main(["eval", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["macro_f1"] == test["macro_f1"]


def test_tiny_data_warns_that_val_and_test_metrics_are_noisy(tmp_path, capsys):
    data = _write_csv(tmp_path / "small.csv", make_corpus(60))
    assert main(["train", "--quiet", *tiny_overrides(data, tmp_path / "run", 10)]) == 0
    assert "only 6 val and 6 test rows (fewer than 10): their metrics will be noisy" in capsys.readouterr().err


def test_json_array_file_trains_and_evaluates(tmp_path, capsys):
    data = tmp_path / "tiny.json"
    data.write_text(json.dumps([{"text": t, "label": y} for t, y in make_corpus()], indent=2), encoding="utf-8")
    out = tmp_path / "run"
    assert main(["train", "--quiet", *tiny_overrides(data, out, 20)]) == 0
    assert json.loads((out / "data_stats.json").read_text())["examples"] == 240
    capsys.readouterr()
    assert main(["eval", str(out), "--data", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 240


def test_predict_reads_the_texts_of_a_json_array(run, tmp_path, capsys):
    texts = tmp_path / "texts.json"
    texts.write_text(json.dumps([{"text": "great lovely"}, {"text": "awful terrible"}, {"text": None}]), "utf-8")
    capsys.readouterr()
    assert main(["predict", str(run), "--input", str(texts)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["text"] for line in lines] == ["great lovely", "awful terrible"]  # a null text is skipped


def test_directory_as_data_path_says_a_file_is_needed(tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    _write_csv(folder / "train.csv", make_corpus(30))
    assert main(["train", *tiny_overrides(folder, tmp_path / "run", 10)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        last == f"error: data path {folder} is a directory; data.path must name a data file such as {folder}/train.csv"
    )
    assert not (tmp_path / "run").exists()
