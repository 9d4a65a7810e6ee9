"""`attncoach predict` (and the other commands that write a file): outputs never destroy data,
options and texts in any order, and the --no-text output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attncoach.cli import main
from clicheck import refused


def test_an_existing_output_needs_overwrite(run, tiny_csv, tmp_path, capsys):
    out = tmp_path / "preds.jsonl"
    out.write_text("keep me\n")
    refused(capsys, ["predict", str(run), "--input", str(tiny_csv), "--output", str(out)], "exists", "--overwrite")
    assert out.read_text() == "keep me\n"
    assert main(["predict", str(run), "--input", str(tiny_csv), "--output", str(out), "--overwrite"]) == 0
    assert len(out.read_text().splitlines()) == 240


def test_subnets_and_search_outputs_need_overwrite(run, tmp_path, capsys):
    out = tmp_path / "taken.json"
    out.write_text("{}")
    refused(capsys, ["subnets", str(run), "--out", str(out)], "exists", "--overwrite")
    refused(capsys, ["search", str(run), "--max-params", "1000000", "--out", str(out)], "exists", "--overwrite")
    assert out.read_text() == "{}"
    assert main(["search", str(run), "--max-params", "1000000", "--out", str(out), "--overwrite", "--quiet"]) == 0
    assert set(json.loads(out.read_text())) == {"layers", "heads", "ffn"}


# ---------------------------------------------------------------- options and texts in any order
def _predicted_texts(capsys) -> list[str]:
    return [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()]


def test_texts_after_options(run, tmp_path, capsys):
    subnet = tmp_path / "s.json"
    assert main(["search", str(run), "--max-params", "1000000", "--out", str(subnet), "--quiet"]) == 0
    capsys.readouterr()
    for argv in (
        ["predict", str(run), "--subnet", str(subnet), "the flight was late"],
        ["predict", str(run), "--width", "0.5", "the flight was late", "thanks a lot"],
        ["predict", "--width", "0.5", str(run), "the flight was late"],
        ["predict", str(run), "the flight was late", "--depth", "0.5", "thanks a lot"],
        ["predict", "--quiet", str(run), "--width", "0.5", "the flight was late"],
    ):
        assert main(argv) == 0, argv
        assert _predicted_texts(capsys)[0] == "the flight was late"


def test_train_overrides_around_options(tiny_csv, tmp_path, capsys):
    from tinydata import tiny_overrides

    overrides = tiny_overrides(tiny_csv, tmp_path / "run", steps=5)
    assert main(["train", *overrides[:3], "--quiet", *overrides[3:]]) == 0
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_errors_show_the_commands_usage(run, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(run), "some text", "--no-such-option"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: attncoach predict" in err and "unrecognized arguments: --no-such-option" in err


# ---------------------------------------------------------------- --no-text
def test_no_text_leaves_the_text_out(run, tiny_csv, tmp_path, capsys):
    assert main(["predict", str(run), "--no-text", "the flight was late", "thanks"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and all(set(row) == {"label", "probabilities"} for row in rows)
    out = tmp_path / "p.jsonl"
    assert main(["predict", str(run), "--input", str(tiny_csv), "--output", str(out), "--no-text"]) == 0
    assert "text" not in json.loads(Path(out).read_text().splitlines()[0])


# ---------------------------------------------------------------- streaming --input (issue 13 item 4)
def test_a_large_input_is_streamed_in_order(run, tmp_path, capsys):
    words = ["great thanks", "awful late flight", "meeting on tuesday", "the phone is broken"]
    texts = [f"{words[i % 4]} {i}" for i in range(20_000)]
    source = tmp_path / "many.txt"
    source.write_text("\n".join(texts[:10]) + "\n\n   \n" + "\n".join(texts[10:]) + "\n")  # blank lines are skipped
    out = tmp_path / "preds.jsonl"
    assert main(["predict", str(run), "--input", str(source), "--output", str(out), "--batch-size", "64"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in rows] == texts
    assert all(r["label"] in {"negative", "neutral", "positive"} for r in rows)
    capsys.readouterr()
    assert main(["predict", str(run), "--input", str(source), "--batch-size", "1000", "--no-text", "--quiet"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in printed] == [r["label"] for r in rows] and "text" not in printed[0]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".json"])
def test_every_input_format_streams_its_text_column(run, tmp_path, capsys, suffix):
    texts = [f'text "{i}", with a comma\tand a tab' if suffix == ".jsonl" else f"text {i}" for i in range(300)]
    source = tmp_path / f"in{suffix}"
    if suffix in (".csv", ".tsv"):
        import csv

        with open(source, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, delimiter="," if suffix == ".csv" else "\t")
            writer.writerow(["id", "body"])
            writer.writerows([i, t] for i, t in enumerate(texts))
    elif suffix == ".jsonl":
        source.write_text("\n".join(json.dumps({"body": t}) for t in texts) + "\n", encoding="utf-8")
    else:
        source.write_text(json.dumps([{"body": t} for t in texts]), encoding="utf-8")
    capsys.readouterr()
    assert main(["predict", str(run), "--input", str(source), "--text-column", "body", "--batch-size", "7"]) == 0
    assert [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()] == texts


def test_a_bad_line_deep_in_the_input_leaves_no_output_file(run, tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps({"text": f"fine {i}"}) for i in range(3000)) + "\n{broken\n")
    out = tmp_path / "preds.jsonl"
    refused(capsys, ["predict", str(run), "--input", str(source), "--output", str(out)], "line 3001 is not valid JSON")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    (tmp_path / "bad.txt").write_bytes(b"fine\n" * 2000 + b"caf\xe9\n")
    refused(capsys, ["predict", str(run), "--input", str(tmp_path / "bad.txt")], "line 2001 is not valid utf-8")
    (tmp_path / "blank.txt").write_text("\n  \n")
    refused(capsys, ["predict", str(run), "--input", str(tmp_path / "blank.txt"), "--output", str(out)], "has no texts")
    assert not out.exists()
    refused(capsys, ["predict", str(run), "x", "--batch-size", "0"], "--batch-size must be at least 1")
    refused(capsys, ["predict", str(run), "x", "--runtime", "tflite"], "unknown runtime str 'tflite'")
