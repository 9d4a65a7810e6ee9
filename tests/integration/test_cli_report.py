"""attncoach report and attncoach attention through the real CLI, and the report in headless Chromium."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from attncoach.cli import main
from attncoach.report.runfiles import read_scalars
from browser import CHARTS_JS, Chromium, find_chromium
from clicheck import digest, refused
from tinydata import (
    make_interactions,
    rewind_to_first_checkpoint,
    tiny_next_item_overrides,
    tiny_overrides,
    write_corpus,
)

# the sections every report of a finished run has, and the charts of the coached, elastic, Leitner run below
SECTIONS = ("summary", "curves", "evaluation", "coach", "knobs", "curriculum", "attention", "subnets", "config")
CHARTS = ("r0-loss", "r0-val-metrics", "r0-confusion", "r0-coach-timeline", "r0-knob-lr", "r0-curriculum", "r0-subnets")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two finished tiny runs shared by this module: a text classifier (coach, sub-nets, Leitner boxes) and a
    next-item model."""
    root = tmp_path_factory.mktemp("report")
    data = write_corpus(root / "tiny.csv")
    text = root / "text"
    args = [a for a in tiny_overrides(data, text, 40) if a not in ("coach.enabled=false", "model.layers=1")]
    extra = ["model.layers=2", "elastic.enabled=true", "curriculum.scheduler=leitner"]
    assert main(["train", "--quiet", *args, *extra]) == 0
    items = root / "items"
    overrides = tiny_next_item_overrides(make_interactions(root / "inter.tsv"), items, 30)
    assert main(["train", "--quiet", *overrides]) == 0
    return {"text": text, "items": items, "data": data}


def test_train_writes_the_report_and_the_scalar_history(runs):
    html = (runs["text"] / "report.html").read_text()
    for name in SECTIONS:
        assert f'<section id="r0-{name}">' in html, name
    for chart in CHARTS:
        assert f'id="{chart}"' in html, chart
    assert "loss (dashed: the coach rolled back)" in html and 'class="event"' in html  # the LR probe's rollback
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    groups = {e["group"] for e in read_scalars(runs["text"] / "scalars.jsonl")}
    assert {"train", "val", "test", "coach", "curriculum"} <= groups
    boxes = [e["values"] for e in read_scalars(runs["text"] / "scalars.jsonl") if e["group"] == "curriculum"]
    assert boxes[0]["box_0"] == 192 and sum(boxes[-1].values()) == 192 and boxes[-1]["box_0"] < 192


def test_report_of_a_partial_run_says_what_is_missing(runs, tmp_path, capsys):
    partial = tmp_path / "partial"
    shutil.copytree(runs["text"], partial)
    for name in ("metrics.json", "scalars.jsonl", "examples.jsonl", "report.html"):
        (partial / name).unlink()
    before = digest(partial)
    assert main(["report", str(partial)]) == 0
    html = (partial / "report.html").read_text()
    assert "metrics.json: the run has not finished" in html and "scalars.jsonl: no logged scalars" in html
    assert "no test metrics" in html and 'id="r0-attention-0-l0-h0"' in html  # the saved model still shows
    after = digest(partial)
    assert after.pop("report.html") and after == before  # nothing but the report was written


def test_report_of_a_run_from_before_scalars_jsonl_draws_its_evaluations(runs, tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(runs["text"], old)
    (old / "scalars.jsonl").unlink()
    assert main(["report", str(old)]) == 0
    html = (old / "report.html").read_text()
    assert "scalars.jsonl: no logged scalars" in html
    assert '<svg class="chart" id="r0-loss"' in html and '<svg class="chart" id="r0-val-metrics"' in html


def test_measured_sub_nets_are_charted_with_their_pareto_front(runs, tmp_path, capsys):
    run = tmp_path / "measured"
    shutil.copytree(runs["text"], run)
    assert main(["subnets", str(run), "--out", str(run / "subnets.json"), "--batch-sizes", "1"]) == 0
    assert main(["report", str(run)]) == 0
    html = (run / "report.html").read_text()
    rows = json.loads((run / "subnets.json").read_text())["rows"]
    assert "vs latency_ms_b1 (Pareto front joined)" in html
    assert html.count('class="point"') == len(rows) == 8 and 'class="front"' in html


def test_report_refuses_what_is_not_a_run_with_one_line(runs, tmp_path, capsys):
    refused(capsys, ["report", str(runs["data"])], "is not an attncoach run directory", one_line=True)
    refused(capsys, ["report", str(tmp_path / "nowhere")], "run directory not found")
    refused(capsys, ["report", str(runs["text"]), "--out", str(runs["text"] / "metrics.json")], "must end in .html")
    refused(capsys, ["report", str(runs["text"]), str(runs["items"])], "needs --out")


def test_report_of_two_runs_shows_their_config_differences(runs, tmp_path, capsys):
    out = tmp_path / "both.html"
    assert main(["report", str(runs["text"]), str(runs["items"]), "--out", str(out)]) == 0
    html = out.read_text()
    assert '<section id="compare">' in html and "<td>task</td>" in html and "<td>next_item</td>" in html
    assert '<section id="r1-evaluation">' in html and "ndcg@10" in html


def test_attention_writes_html_and_png_and_refuses_bad_choices(runs, tmp_path, capsys):
    out = tmp_path / "a.html"
    assert main(["attention", str(runs["text"]), "the flight was wonderful", "--out", str(out), "--layer", "1"]) == 0
    html = out.read_text()
    assert 'id="attention-l1-h0"' in html and 'id="attention-l1-h1"' in html and "attention-l0" not in html
    assert "flight" in html
    pytest.importorskip("matplotlib")
    png = tmp_path / "a.png"
    assert main(["attention", str(runs["items"]), "i3 i4 i5", "--out", str(png), "--head", "0"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    refused(capsys, ["attention", str(runs["text"]), "x", "--layer", "2"], "--layer 2 is out of range")
    refused(
        capsys, ["attention", str(runs["text"]), "x", "--out", str(tmp_path / "a.txt")], "must end in .html or .png"
    )
    refused(capsys, ["attention", str(runs["items"]), "nothing known"], "none of the history's items is known")


def test_a_resumed_run_neither_loses_nor_repeats_a_scalar(runs, tmp_path):
    resumed = tmp_path / "resumed"
    shutil.copytree(runs["text"], resumed)
    rewind_to_first_checkpoint(resumed)  # killed after its last log line, resumed from its first checkpoint
    assert main(["train", "--quiet", "--resume", str(resumed)]) == 0
    whole, again = read_scalars(runs["text"] / "scalars.jsonl"), read_scalars(resumed / "scalars.jsonl")
    assert [(e["step"], e["group"], sorted(e["values"])) for e in again] == [
        (e["step"], e["group"], sorted(e["values"])) for e in whole
    ]
    for a, b in zip(whole, again):
        for name, value in a["values"].items():
            assert b["values"][name] == pytest.approx(value, rel=1e-4, abs=1e-6), (a["step"], a["group"], name)


@pytest.mark.skipif(find_chromium() is None, reason="no chromium binary (apt-get install chromium; .ci/run does)")
def test_the_report_renders_in_headless_chromium(runs, tmp_path):
    shutil.copy(runs["items"] / "report.html", tmp_path / "items.html")
    browser = Chromium(find_chromium())
    try:
        for page, expected in (
            (runs["text"] / "report.html", CHARTS),
            (tmp_path / "items.html", ("r0-loss", "r0-test-metrics")),
        ):
            session, _ = browser.load(page)
            charts = json.loads(browser.evaluate(CHARTS_JS, session))
            ids = {c["id"] for c in charts}
            assert set(expected) <= ids, (page, sorted(ids))
            empty = [c["id"] for c in charts if not (c["width"] > 0 and c["height"] > 0 and c["shapes"] > 0)]
            assert not empty, (page, empty)
        assert browser.errors() == []
        assert browser.requests() == [
            p.resolve().as_uri() for p in (runs["text"] / "report.html", tmp_path / "items.html")
        ]
    finally:
        browser.close()
