"""Every bad input: one clear line on stderr, a non-zero exit, nothing damaged."""

from __future__ import annotations

from pathlib import Path

import pytest

from attncoach.cli import main
from clicheck import digest, refused
from tinydata import tiny_overrides


@pytest.fixture
def finished_run(tiny_csv, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "done"
    assert main(["train", "--quiet", *tiny_overrides(tiny_csv, out, steps=20)]) == 0
    return out


def _train_on(capsys, tmp_path, data: Path, *words: str, extra: tuple[str, ...] = ()) -> str:
    line = refused(capsys, ["train", "--quiet", *tiny_overrides(data, tmp_path / "out"), *extra], *words)
    assert not (tmp_path / "out").exists(), "a refused run must leave no run directory behind"
    return line


def test_missing_file(capsys, tmp_path):
    _train_on(capsys, tmp_path, tmp_path / "missing.csv", "not found", "missing.csv")


def test_empty_file(capsys, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    _train_on(capsys, tmp_path, empty, "no rows")


def test_header_only(capsys, tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("text,label\n")
    _train_on(capsys, tmp_path, path, "no rows")


def test_missing_columns(capsys, tmp_path):
    path = tmp_path / "cols.csv"
    path.write_text("body,sentiment\nhello,positive\n")
    _train_on(capsys, tmp_path, path, "no column 'text'", "body, sentiment")


def test_invalid_bytes_name_the_line(capsys, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"text,label\nfine,positive\nalso fine,negative\ncaf\xe9 au lait,neutral\n")
    _train_on(capsys, tmp_path, path, "line 4", "utf-8", "data.encoding")


def test_single_class(capsys, tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("text,label\n" + "".join(f"text number {i},positive\n" for i in range(50)))
    _train_on(capsys, tmp_path, path, "single class", "positive")


def test_blank_rows_only(capsys, tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text("text,label\n  ,positive\nsomething,\n")
    _train_on(capsys, tmp_path, path, "no usable rows")


def test_bad_config_key_and_type(capsys, tmp_path, tiny_csv):
    _train_on(capsys, tmp_path, tiny_csv, "model.depth", extra=("model.depth=3",))
    _train_on(capsys, tmp_path, tiny_csv, "train.batch_size", extra=("train.batch_size=big",))
    assert not (tmp_path / "out").exists(), "a refused config must not create the run directory"


def test_output_dir_holding_another_run_is_untouched(capsys, finished_run, tiny_csv):
    before = digest(finished_run)
    refused(capsys, ["train", "--quiet", *tiny_overrides(tiny_csv, finished_run)], "already holds a run", "--resume")
    assert digest(finished_run) == before


def test_not_a_run_directory(capsys, tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("hi")
    refused(capsys, ["eval", str(tmp_path / "stuff")], "not a run or model directory")
    refused(capsys, ["predict", str(tmp_path / "stuff"), "hello"], "not a run or model directory")
    refused(capsys, ["train", "--resume", str(tmp_path / "stuff")], "not an attncoach run directory")
    refused(capsys, ["eval", str(tmp_path / "nowhere")], "not found")


def _break_every_checkpoint(run: Path, how: str) -> None:
    (run / "metrics.json").unlink()  # make it look interrupted
    for checkpoint in (run / "checkpoints").glob("step-*"):  # a damaged latest one alone falls back to the older
        target = checkpoint / "model.safetensors"
        data = target.read_bytes()
        target.write_bytes(data[: len(data) // 3] if how == "truncate" else data[:-8] + b"\x00" * 8)


@pytest.mark.parametrize("how", ["truncate", "corrupt"])
def test_damaged_checkpoints_are_refused_and_run_untouched(capsys, finished_run, how):
    _break_every_checkpoint(finished_run, how)
    before = digest(finished_run)
    refused(capsys, ["train", "--quiet", "--resume", str(finished_run)], "truncated or corrupted", "model.safetensors")
    assert digest(finished_run) == before


def test_damaged_model_weights(capsys, finished_run):
    weights = finished_run / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    refused(capsys, ["eval", str(finished_run)], "damaged", "model.safetensors")
    refused(capsys, ["predict", str(finished_run), "hi"], "damaged")


def test_eval_file_with_unknown_label(capsys, finished_run, tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("text,label\ngood,positive\nmeh,mixed\n")
    refused(capsys, ["eval", str(finished_run), "--data", str(path)], "'mixed'", "line 3")


def test_predict_needs_texts_or_input(capsys, finished_run, tmp_path):
    refused(capsys, ["predict", str(finished_run)], "either texts")
    refused(capsys, ["predict", str(finished_run), "--input", str(tmp_path / "none.txt")], "not found")
