"""`attncoach select` and `attncoach active` end to end on tiny runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from attncoach.cli import main
from clicheck import digest, refused
from tinydata import tiny_overrides, write_corpus


def _overrides(data: Path, steps: int = 20) -> list[str]:
    return [o for o in tiny_overrides(data, Path("unused"), steps) if not o.startswith("output_dir=")]


@pytest.fixture
def data(tmp_path) -> Path:
    return write_corpus(tmp_path / "tiny.csv")


@pytest.fixture
def pool(tmp_path) -> Path:
    path = tmp_path / "pool.jsonl"
    texts = ["love this great phone", "the meeting is on tuesday", "rude and late again", "my flight", "", "ok"]
    path.write_text("".join(json.dumps({"body": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def test_select_ranks_the_pool_and_writes_jsonl_or_csv(run, pool, tmp_path, capsys):
    argv = ["select", str(run), "--pool", str(pool), "--text-column", "body", "--budget", "3"]
    assert main(argv) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    texts = ["love this great phone", "the meeting is on tuesday", "rude and late again", "my flight", "ok"]
    assert [r["rank"] for r in rows] == [1, 2, 3] and all(texts[r["pool_index"]] == r["text"] for r in rows)
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True) and all(0 < r["probability"] <= 1 for r in rows)
    out = tmp_path / "next.csv"
    for strategy in ("margin", "badge", "coreset", "random"):
        assert main([*argv, "--strategy", strategy, "--out", str(out), "--overwrite"]) == 0
        with open(out, newline="", encoding="utf-8") as fh:
            table = list(csv.DictReader(fh))
        assert len(table) == 3 and len({r["pool_index"] for r in table}) == 3
    refused(capsys, [*argv, "--out", str(out)], "already exists; add --overwrite")


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--budget", "9"], "--budget 9 is larger than the pool's 5 texts"),
        (["--budget", "0"], "--budget must be at least 1"),
        (["--budget", "2", "--strategy", "bald"], "unknown strategy 'bald'"),
        (["--budget", "2", "--text-column", "text"], "text"),
    ],
)
def test_select_bad_input_is_one_line(run, pool, capsys, extra, words):
    refused(capsys, ["select", str(run), "--pool", str(pool), "--text-column", "body", *extra], words)


def test_active_trains_rounds_warm_started_and_writes_the_learning_curve(data, tmp_path, capsys):
    out = tmp_path / "loop"
    argv = ["active", "--quiet", "--start", "20", "--step", "20", "--rounds", "3", "--out", str(out), *_overrides(data)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    state = json.loads((out / "active.json").read_text())
    rounds = state["rounds"]
    assert [r["labels"] for r in rounds] == [20, 40, 60] and [len(r["picked"]) for r in rounds] == [20, 20, 0]
    assert state["curve"] == [[r["labels"], r["test_macro_f1"]] for r in rounds]
    seen: set[int] = set()
    for r in rounds:
        train = [json.loads(line) for line in (out / f"round-{r['round']:02d}.jsonl").read_text().splitlines()]
        labelled = {row["text"] for row in train if row["split"] == "train"}
        assert len(labelled) == r["labels"] and not seen & set(r["picked"])
        seen |= set(r["picked"])
    config = (out / "round-01" / "config.yaml").read_text()
    assert f"backbone: {out / 'round-00' / 'model'}" in config
    tokenizers = {(out / f"round-{i:02d}" / "model" / "tokenizer.json").read_bytes() for i in range(3)}
    assert len(tokenizers) == 1  # one vocabulary: each round starts from the last
    assert "active learning: entropy" in printed


def test_a_stopped_loop_resumes_and_ends_as_one_never_stopped(data, tmp_path, monkeypatch):
    from attncoach.train.recipe import Recipe

    args = ["--quiet", "--start", "20", "--step", "20", "--rounds", "3", "--strategy", "margin", *_overrides(data, 30)]
    assert main(["active", "--out", str(tmp_path / "whole"), *args]) == 0
    whole = json.loads((tmp_path / "whole" / "active.json").read_text())
    real, calls = Recipe.train_step, {"n": 0}

    def stop_in_round_one(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 30 + 15:  # round 1, after its first checkpoint (step 10)
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Recipe, "train_step", stop_in_round_one)
    out = tmp_path / "stopped"
    assert main(["active", "--out", str(out), *args]) == 130
    assert len(json.loads((out / "active.json").read_text())["rounds"]) == 1
    monkeypatch.setattr(Recipe, "train_step", real)
    assert main(["active", "--out", str(out), *args]) == 0
    resumed = json.loads((out / "active.json").read_text())
    for a, b in zip(whole["rounds"], resumed["rounds"]):
        assert a["picked"] == b["picked"] and a["test_macro_f1"] == b["test_macro_f1"] and a["steps"] == b["steps"]


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--rounds", "40"], "need 800 examples; the pool (the training split) holds 192"),
        (["--start", "0"], "--start must be at least 1"),
        (["--strategy", "bald"], "unknown strategy 'bald'"),
        (["output_dir=x"], "attncoach active sets output_dir for each round"),
    ],
)
def test_active_bad_input_is_one_line_and_writes_nothing(data, tmp_path, capsys, extra, words):
    out = tmp_path / "loop"
    refused(
        capsys,
        ["active", "--quiet", "--start", "20", "--step", "20", "--out", str(out), *_overrides(data), *extra],
        words,
    )
    assert not out.exists()


def test_active_refuses_a_task_without_texts_to_label(data, tmp_path, capsys):
    out = tmp_path / "loop"
    argv = ["active", "--quiet", "--out", str(out), "task=next_item", f"data.path={data}"]
    refused(capsys, argv, "task next_item is not text_classification")
    assert not out.exists()


def test_active_refuses_an_out_holding_another_loop_and_leaves_it_alone(data, tmp_path, capsys):
    out = tmp_path / "loop"
    argv = ["active", "--quiet", "--start", "20", "--step", "20", "--rounds", "1", "--out", str(out), *_overrides(data)]
    assert main(argv) == 0
    before = digest(out)
    refused(capsys, [*argv, "--strategy", "random"], "holds an active-learning loop with other settings")
    assert digest(out) == before
