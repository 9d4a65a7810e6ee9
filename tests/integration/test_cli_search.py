"""`attncoach subnets` and `attncoach search` end to end on a tiny run, and their bad inputs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from attncoach.cli import main
from attncoach.elastic.space import ElasticSpace
from tinydata import tiny_overrides, write_corpus


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny 4-layer run, trained once for the module (the commands below only read it)."""
    folder = tmp_path_factory.mktemp("search")
    data = write_corpus(folder / "tiny.csv")
    out = folder / "run"
    args = [a for a in tiny_overrides(data, out, 30) if not a.startswith(("model.layers", "model.ffn_dim"))]
    assert main(["train", "--quiet", *args, "model.layers=4", "model.ffn_dim=32"]) == 0
    return out


def _last_error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    return lines[-1] if lines else ""


def test_subnets_writes_rows_with_latency_and_pareto(run, tmp_path, capsys):
    out = tmp_path / "grid.json"
    assert main(["subnets", str(run), "--out", str(out), "--batch-sizes", "4", "1", "--threads", "1"]) == 0
    assert "sub-nets of" in capsys.readouterr().out
    grid = json.loads(out.read_text())
    assert grid["batch_sizes"] == [1, 4] and grid["threads"] == 1 and grid["examples"] > 0
    assert grid["pareto_costs"] == ["latency_ms_b4", "parameters"]
    rows = grid["rows"]
    # The default space (the run was not trained elastically): widths 0.25-1 x depths 0.5, 1.
    assert [r["name"] for r in rows] == [
        f"w{w} d{d}" for d in ("0.50", "1.00") for w in ("0.25", "0.50", "0.75", "1.00")
    ]
    for row in rows:
        assert row["latency_ms_b1"] > 0 and row["latency_ms_b4"] > 0 and 0 <= row["macro_f1"] <= 1
        assert isinstance(row["pareto"], bool) and set(row["subnet"]) == {"layers", "heads", "ffn"}
    assert any(r["pareto"] for r in rows)
    assert rows[-1]["parameters"] == max(r["parameters"] for r in rows)


def test_search_output_feeds_eval(run, tmp_path, capsys):
    grid = tmp_path / "grid.json"
    assert main(["subnets", str(run), "--quiet", "--out", str(grid), "--batch-sizes", "1"]) == 0
    params = sorted(r["parameters"] for r in json.loads(grid.read_text())["rows"])
    capsys.readouterr()
    chosen = tmp_path / "s.json"
    assert main(["search", str(run), "--max-params", str(params[2]), "--out", str(chosen), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["parameters"] <= params[2] and result["latency_ms"] > 0
    assert result["budget"]["max_params"] == params[2] and result["search"] == "exhaustive"
    assert json.loads(chosen.read_text()) == result["subnet"]

    assert main(["eval", str(run), "--subnet", str(chosen), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["subnet"] and 0 <= metrics["macro_f1"] <= 1

    assert main(["search", str(run), "--max-latency-ms", "10000", "--batch", "2"]) == 0
    printed = capsys.readouterr().out
    assert "best sub-net within 10000 ms at batch 2" in printed and "width only" in printed


def test_the_runs_elastic_space_is_used(run, tmp_path, capsys):
    copy = tmp_path / "elastic-run"
    shutil.copytree(run, copy)
    model_config = copy / "model" / "model_config.json"
    config = json.loads(model_config.read_text())
    config["elastic"] = ElasticSpace(widths=(0.5, 1.0), depths=(1.0,)).to_dict()
    model_config.write_text(json.dumps(config))
    out = tmp_path / "grid.json"
    assert main(["subnets", str(copy), "--out", str(out), "--batch-sizes", "2"]) == 0
    assert [r["name"] for r in json.loads(out.read_text())["rows"]] == ["w0.50 d1.00", "w1.00 d1.00"]
    assert "not trained elastically" not in capsys.readouterr().err


def test_an_impossible_budget_names_the_fastest(run, capsys):
    assert main(["search", str(run), "--max-latency-ms", "0.000001"]) == 2
    err = _last_error(capsys)
    # Which one measures fastest is up to the machine; it is named with its latency.
    assert re.fullmatch(r"error: no sub-net meets 1e-06 ms at batch 1: the fastest, w\S+ d\S+, takes \S+ ms", err), err


def test_a_latency_and_a_parameter_budget_together(run, tmp_path, capsys):
    grid = tmp_path / "grid.json"
    assert main(["subnets", str(run), "--quiet", "--out", str(grid), "--batch-sizes", "1"]) == 0
    params = sorted(r["parameters"] for r in json.loads(grid.read_text())["rows"])
    capsys.readouterr()
    argv = ["search", str(run), "--max-params", str(params[2]), "--max-latency-ms", "10000", "--batch", "2"]
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["budget"] == {"max_latency_ms": 10000, "max_params": params[2], "batch": 2}
    assert result["parameters"] <= params[2] and result["latency_ms"] <= 10000
    assert main(argv) == 0
    assert f"best sub-net within {params[2]:,} parameters and 10000 ms at batch 2" in capsys.readouterr().out
    # both apply: a latency no sub-net meets fails even with a generous parameter budget
    assert main(["search", str(run), "--max-params", str(params[-1]), "--max-latency-ms", "0.000001"]) == 2
    assert "no sub-net meets" in _last_error(capsys)


@pytest.mark.parametrize(
    "argv, words",
    [
        (["search", "{run}"], "give a budget"),
        (["search", "{run}", "--max-params", "0"], "positive whole number"),
        (["search", "{run}", "--max-params", "1e99999"], "positive whole number"),
        (["search", "{run}", "--max-latency-ms", "-2"], "positive"),
        (["search", "{run}", "--max-latency-ms", "5", "--batch", "0"], "at least 1"),
        (["search", "{run}", "--max-params", "100", "--batch", "4"], "does not apply"),
        (["search", "{run}", "--max-params", "100", "--out", "{tmp}/no/such/s.json"], "output folder does not exist"),
        (["subnets", "{run}", "--out", "{tmp}/no/such/f.json"], "output folder does not exist"),
        (["subnets", "{run}", "--batch-sizes", "0"], "at least 1"),
        (["subnets", "{run}", "--threads", "0"], "at least 1"),
        (["subnets", "{tmp}/missing"], "run directory not found"),
        (["subnets", "{tmp}"], "not an attncoach run directory"),
        (["subnets", "{run}/model"], "bare model directory"),
        (["search", "{run}/model", "--max-params", "100"], "bare model directory"),
        (["search", "{tmp}/untrained", "--max-params", "100"], "no saved model"),
    ],
)
def test_bad_inputs_exit_2(run, tmp_path, capsys, argv, words):
    (tmp_path / "untrained").mkdir()
    shutil.copy(run / "config.yaml", tmp_path / "untrained" / "config.yaml")
    argv = [a.format(run=run, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = _last_error(capsys)
    assert err.startswith("error: ") and words in err, err
