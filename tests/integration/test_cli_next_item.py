"""Task next_item through the real CLI: train -> eval -> recommend -> resume after kill -> subnets -> search -> export."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import attncoach
from attncoach.cli import main
from tinydata import kill_once_checkpointed, make_interactions, tiny_next_item_overrides, without_times


@pytest.fixture
def inter(tmp_path: Path) -> Path:
    return make_interactions(tmp_path / "inter.tsv")


def _train(inter: Path, out: Path, steps: int = 80, *extra: str) -> dict:
    assert main(["train", "--quiet", *tiny_next_item_overrides(inter, out, steps), *extra]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_train_eval_recommend(inter, tmp_path, capsys):
    metrics = _train(inter, tmp_path / "run", 120)
    assert metrics["task"] == "next_item" and metrics["primary"] == "ndcg@10"
    test = metrics["test"]
    assert test["n"] == 48 and 0 <= test["ndcg@10"] <= test["hr@10"] <= 1
    assert {"hr@10_sampled", "ndcg@10_sampled", "mrr", "loss"} <= set(test)
    # the walk is learnable: far above a random ranking of ~17 unseen items (HR@10 about 0.6)
    assert test["hr@10"] >= 0.9, test
    model = tmp_path / "run" / "model"
    assert {"items.json", "users.json", "model_config.json", "model.safetensors"} <= {p.name for p in model.iterdir()}
    assert json.loads((model / "model_config.json").read_text())["task"] == "next_item"
    assert "calibration" not in metrics and not (model / "calibration.json").exists()  # a ranking: no probabilities
    assert (tmp_path / "run" / "examples.jsonl").is_file()
    capsys.readouterr()

    assert main(["eval", str(tmp_path / "run"), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["ndcg@10"] == pytest.approx(test["ndcg@10"])

    assert main(["recommend", str(tmp_path / "run"), "--user", "u0", "u1", "-k", "3"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["user"] for r in rows] == ["u0", "u1"] and all(len(r["items"]) == 3 for r in rows)
    rec = attncoach.load(tmp_path / "run")
    seen = set(rec.history_of("u0"))
    assert not seen & {x["item"] for x in rows[0]["items"]}  # seen items are left out by default

    assert main(["recommend", str(tmp_path / "run"), "--history", "i3 i4 i5 i6", "-k", "2"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["history"] == ["i3", "i4", "i5", "i6"] and "i7" in [x["item"] for x in row["items"]]


def test_recommend_bad_input(inter, tmp_path, capsys):
    _train(inter, tmp_path / "run", 20)
    run = str(tmp_path / "run")
    cases = [
        (["recommend", run, "--user", "nobody"], "unknown user 'nobody'"),
        (["recommend", run, "--history", "x1 x2"], "none of the history's items is known"),
        (["recommend", run, "--user", "u0", "-k", "0"], "k must be an integer from 1 to 30"),
        (["predict", run, "some text"], "use attncoach recommend"),
        (["eval", run, "--data", str(inter)], "--data scores a labelled text file"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    capsys.readouterr()
    assert main(["recommend", run, "--history", "x1 i3 i4"]) == 0  # unknown items are left out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["data.text_column=body"], "config key 'data.text_column' belongs to task masked_lm, text_classification"),
        (["model.backbone=minilm"], "config key 'model.backbone' belongs to task masked_lm, text_classification"),
        (
            ["task=ranking"],
            "config key 'task' must be one of image_classification, masked_lm, next_item, text_classification",
        ),
        (["train.target={metric: macro_f1, value: 0.5}"], "must be one of ndcg@10, hr@10 for task next_item"),
    ],
)
def test_config_of_another_task_is_refused(inter, tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    assert main(["train", "--quiet", *tiny_next_item_overrides(inter, out, 5), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_next_item_key_under_text_classification_is_refused(tiny_csv, tmp_path, capsys):
    assert main(["train", "--quiet", f"data.path={tiny_csv}", f"output_dir={tmp_path / 'r'}", "data.negatives=5"]) == 2
    assert "config key 'data.negatives' belongs to task next_item" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content, message",
    [
        ("user_id\tthing\ttimestamp\nu1\ti1\t1\n", "no item column"),
        ("user_id\titem_id\ttimestamp\nu1\ti1\tmonday\n", "timestamp"),
        ("user_id\titem_id\ttimestamp\nu1\ti1\t1\nu1\ti2\t2\n", "no user has at least 3 interactions"),
        ("", "has no interactions"),
    ],
)
def test_bad_interaction_files(tmp_path, capsys, content, message):
    path = tmp_path / "bad.tsv"
    path.write_text(content, encoding="utf-8")
    out = tmp_path / "run"
    assert main(["train", "--quiet", *tiny_next_item_overrides(path, out, 5)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert not out.exists()


def test_resume_after_kill_gives_the_same_metrics(inter, tmp_path):
    steps = 300
    reference = _train(inter, tmp_path / "ref", steps)
    out = tmp_path / "killed"
    args = [
        sys.executable,
        "-m",
        "attncoach",
        "train",
        "--quiet",
        *tiny_next_item_overrides(inter, out, steps),
        "train.checkpoint_every=7",
    ]
    kill_once_checkpointed(args, out, 60)
    assert not (out / "metrics.json").exists()
    assert main(["train", "--quiet", "--resume", str(out)]) == 0
    resumed = json.loads((out / "metrics.json").read_text())
    assert without_times(resumed) == without_times(reference)


def test_elastic_subnets_search_export(inter, tmp_path, capsys):
    elastic = ["elastic.enabled=true", "elastic.widths=[0.5,1.0]", "elastic.depths=[0.5,1.0]"]
    metrics = _train(inter, tmp_path / "run", 80, *elastic)
    assert {"ndcg@10", "hr@10"} <= set(metrics["elastic"]["test_smallest"])
    run = str(tmp_path / "run")
    capsys.readouterr()

    assert main(["subnets", run, "--batch-sizes", "1", "4", "--out", str(tmp_path / "subnets.json")]) == 0
    table = json.loads((tmp_path / "subnets.json").read_text())
    assert table["metrics"] == ["ndcg@10", "hr@10"] and len(table["rows"]) == 4
    assert all(0 <= row["ndcg@10"] <= 1 for row in table["rows"]) and any(row["pareto"] for row in table["rows"])

    capsys.readouterr()
    assert main(["search", run, "--max-params", "1e9", "--json", "--out", str(tmp_path / "best.json")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["metrics"] == ["ndcg@10", "hr@10"] and result["name"]

    assert main(["eval", run, "--width", "0.5", "--json"]) == 0
    half = json.loads(capsys.readouterr().out)
    assert half["subnet"] and "ndcg@10" in half

    out = tmp_path / "half"
    assert main(["export", run, "--width", "0.5", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["recommend", str(out), "--user", "u3", "-k", "2"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert main(["recommend", run, "--width", "0.5", "--user", "u3", "-k", "2"]) == 0
    masked = json.loads(capsys.readouterr().out)
    assert [x["item"] for x in exported["items"]] == [x["item"] for x in masked["items"]]
    for a, b in zip(exported["items"], masked["items"]):
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)
