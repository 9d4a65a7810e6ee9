"""attncoach robustness through the real CLI on a tiny run: table, JSON, report file, groups, bad inputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from attncoach.cli import main
from clicheck import digest, refused
from tinydata import make_corpus, make_interactions, tiny_next_item_overrides, tiny_overrides

FAST = ["--attack-examples", "6", "--query-budget", "20"]


def write_grouped(path: Path, n: int = 240, column: str = "source") -> Path:
    """The tiny corpus with a group column: news for every third row, shop for the others."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        rows = [(text, label, "news" if i % 3 == 0 else "shop") for i, (text, label) in enumerate(make_corpus(n))]
        csv.writer(fh).writerows([("text", "label", column), *rows])
    return path


@pytest.fixture(scope="module")
def grouped_run(tmp_path_factory) -> Path:
    """A finished tiny run trained with data.group_column=source."""
    root = tmp_path_factory.mktemp("robustness")
    out = root / "run"
    data = write_grouped(root / "grouped.csv")
    assert main(["train", "--quiet", *tiny_overrides(data, out, 30), "data.group_column=source"]) == 0
    return out


def robustness(capsys, *argv: str) -> dict:
    assert main(["robustness", "--quiet", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def without_seconds(report: dict) -> dict:
    return {**report, "attacks": [{k: v for k, v in row.items() if k != "seconds"} for row in report["attacks"]]}


def test_json_report_is_written_to_the_run_and_matches_the_runs_test_metrics(grouped_run, capsys):
    report = robustness(capsys, str(grouped_run), *FAST)
    assert report == json.loads((grouped_run / "robustness.json").read_text())
    assert report["source"] == f"test split of {grouped_run}" and report["examples"] == 24
    names = [row["name"] for row in report["conditions"]]
    assert names == ["clean", "char_noise_10", "char_noise_20", "word_dropout_10"]
    clean = report["conditions"][0]
    test = json.loads((grouped_run / "metrics.json").read_text())["test"]
    assert clean["macro_f1"] == pytest.approx(test["macro_f1"]) and clean["accuracy"] == pytest.approx(test["accuracy"])
    assert all(0 <= row["ece"] <= 1 for row in report["conditions"])
    greedy, deepwordbug = report["attacks"]
    assert greedy["name"] == "greedy_word_importance" and greedy["query_budget"] == 20
    assert greedy["attacked"] + greedy["skipped"] == 6 and 0 <= greedy["success_rate"] <= 1
    assert greedy["successes"] == 0 or greedy["mean_queries_per_success"] <= 20
    assert deepwordbug["name"] == "deepwordbug" and (deepwordbug["ran"] or deepwordbug["reason"])
    groups = report["groups"]
    assert groups["column"] == "source" and [row["group"] for row in groups["rows"]] == ["news", "shop"]
    assert sum(row["n"] for row in groups["rows"]) == 24
    assert groups["worst"] == min(groups["rows"], key=lambda r: (r["macro_f1"], r["accuracy"]))["group"]


def test_same_seed_same_report_and_out_file(grouped_run, tmp_path, capsys):
    first = robustness(capsys, str(grouped_run), *FAST, "--seed", "3", "--out", str(tmp_path / "a.json"))
    again = robustness(capsys, str(grouped_run), *FAST, "--seed", "3", "--out", str(tmp_path / "b.json"))
    assert without_seconds(first) == without_seconds(again)
    assert without_seconds(json.loads((tmp_path / "a.json").read_text())) == without_seconds(first)
    refused(
        capsys, ["robustness", str(grouped_run), "--out", str(tmp_path / "a.json")], "already exists", "--overwrite"
    )
    assert (
        main(["robustness", "--quiet", str(grouped_run), *FAST, "--out", str(tmp_path / "a.json"), "--overwrite"]) == 0
    )


def test_printed_tables(grouped_run, capsys):
    assert main(["robustness", "--quiet", str(grouped_run), *FAST]) == 0
    out = capsys.readouterr().out
    for text in (
        "clean test set",
        "character noise on 20 % of words",
        "word dropout",
        "drop (points)",
        "greedy word importance",
        "TextAttack DeepWordBug recipe",
        "worst group: ",
        "ECE at T=",  # a run fits its temperature on val at the end (train.calibrate, on by default)
    ):
        assert text in out, text


def test_calibrated_ece_at_the_models_temperature_and_raw_without_one(grouped_run, tmp_path, capsys):
    calibration = grouped_run / "model" / "calibration.json"
    fitted = calibration.read_text()
    calibration.write_text(json.dumps({"method": "temperature", "temperature": 2.0}))
    try:
        report = robustness(capsys, str(grouped_run), "--attack-examples", "0", "--out", str(tmp_path / "r.json"))
        assert main(["robustness", "--quiet", str(grouped_run), "--attack-examples", "0", "--overwrite"]) == 0
        assert "ECE at T=2.00" in capsys.readouterr().out
        calibration.unlink()
        raw = robustness(capsys, str(grouped_run), "--attack-examples", "0", "--out", str(tmp_path / "raw.json"))
        assert main(["robustness", "--quiet", str(grouped_run), "--attack-examples", "0", "--overwrite"]) == 0
        assert "ECE is of the raw softmax: the model has no calibration.json" in capsys.readouterr().out
    finally:
        calibration.write_text(fitted)
    assert report["temperature"] == 2.0 and report["attacks"] == []
    assert all(row["ece_calibrated"] is not None for row in report["conditions"])
    assert raw["temperature"] is None and all(row["ece_calibrated"] is None for row in raw["conditions"])


def test_data_file_with_and_without_its_group_column(grouped_run, tmp_path, capsys):
    grouped = write_grouped(tmp_path / "other.csv", 30)
    report = robustness(capsys, str(grouped_run), "--data", str(grouped), "--attack-examples", "2")
    assert report["source"] == f"file {grouped}" and report["examples"] == 30
    assert report["groups"]["column"] == "source" and {r["n"] for r in report["groups"]["rows"]} == {10, 20}
    plain = tmp_path / "plain.csv"
    with open(plain, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("text", "label"), *make_corpus(30)])
    report = robustness(capsys, str(grouped_run), "--data", str(plain), "--attack-examples", "3", "--no-textattack")
    assert report["groups"] is None and [row["name"] for row in report["attacks"]] == ["greedy_word_importance"]
    renamed = write_grouped(tmp_path / "renamed.csv", 30, column="domain")
    report = robustness(capsys, str(grouped_run), "--data", str(renamed), "--group-column", "domain", *FAST)
    assert report["groups"]["column"] == "domain"


def test_bad_inputs_write_nothing(grouped_run, tmp_path, capsys):
    before = digest(grouped_run)
    run = str(grouped_run)
    refused(capsys, ["robustness", str(tmp_path)], "not an attncoach run directory")
    refused(capsys, ["robustness", str(grouped_run / "model")], "model directory", "run directory")
    refused(capsys, ["robustness", str(tmp_path / "nowhere")], "not found")
    plain = tmp_path / "plain.csv"
    plain.write_text("body,label\nhello,positive\n", encoding="utf-8")
    refused(capsys, ["robustness", run, "--data", str(plain)], "no column 'text'", "--text-column")
    refused(capsys, ["robustness", run, "--data", str(plain), "--text-column", "body", "--group-column", "x"], "'x'")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("text,label\nhello,sarcastic\n", encoding="utf-8")
    refused(capsys, ["robustness", run, "--data", str(wrong)], "label 'sarcastic'")
    refused(capsys, ["robustness", run, "--group-column", "source"], "--group-column", "--data")
    refused(capsys, ["robustness", run, "--query-budget", "1"], "--query-budget")
    refused(capsys, ["robustness", run, "--attack-examples", "-1"], "--attack-examples")
    out = tmp_path / "report.json"
    out.write_text("{}")
    refused(capsys, ["robustness", run, "--out", str(out)], "already exists")
    assert digest(grouped_run) == before and out.read_text() == "{}"


def test_a_next_item_run_is_refused(tmp_path, capsys):
    out = tmp_path / "items"
    assert main(["train", "--quiet", *tiny_next_item_overrides(make_interactions(tmp_path / "i.tsv"), out, 5)]) == 0
    refused(capsys, ["robustness", str(out)], "text classifiers", "next_item")
    assert not (out / "robustness.json").exists()


def test_a_group_column_missing_from_the_data_is_refused_before_the_run_is_made(tmp_csv_run_args, capsys):
    args, out = tmp_csv_run_args
    refused(capsys, ["train", *args, "data.group_column=domain"], "no column 'domain'", "data.group_column")
    assert not out.exists()
    refused(
        capsys, ["train", *[a for a in args if not a.startswith("data.path")], "data.group_column=domain"], "built-in"
    )
    assert not out.exists()


@pytest.fixture
def tmp_csv_run_args(tiny_csv, tmp_path) -> tuple[list[str], Path]:
    out = tmp_path / "never"
    return tiny_overrides(tiny_csv, out, 5), out
