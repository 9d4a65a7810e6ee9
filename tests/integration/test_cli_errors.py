"""Exit statuses and messages: internal errors that are really bad input, --debug, SIGTERM,
and messages that name what the user can change."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

import attncoach.cli
from attncoach.cli import main
from clicheck import refused
from tinydata import tiny_overrides, without_times


@pytest.mark.parametrize("labels", [["negative", "positive"], ["a", "b", "c", "d"]])
def test_labels_that_do_not_match_the_model(run, tiny_csv, capsys, labels):
    path = run / "model" / "labels.json"
    path.write_text(json.dumps(labels))
    for argv in (["predict", str(run), "the flight was late"], ["eval", str(run), "--data", str(tiny_csv)]):
        refused(capsys, argv, "labels.json", f"{len(labels)} labels", "3 classes")


def test_debug_shows_the_traceback_and_keeps_the_exit_status(tmp_path, capsys, monkeypatch):
    assert main(["--debug", "eval", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: not found")

    def broken(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(attncoach.cli, "cmd_eval", broken)
    assert main(["eval", "--debug", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "internal error RuntimeError: a bug" in err
    assert main(["eval", str(tmp_path)]) == 1
    assert "Traceback" not in capsys.readouterr().err


# ---------------------------------------------------------------- SIGTERM
def test_sigterm_says_terminated_and_the_run_resumes(tiny_csv, tmp_path):
    steps = 200
    assert main(["train", "--quiet", *tiny_overrides(tiny_csv, tmp_path / "ref", steps)]) == 0
    reference = json.loads((tmp_path / "ref" / "metrics.json").read_text())

    out = tmp_path / "term"
    args = [sys.executable, "-m", "attncoach", "train", "--quiet", *tiny_overrides(tiny_csv, out, steps)]
    proc = subprocess.Popen([*args, "train.checkpoint_every=7"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pointer = out / "checkpoints" / "latest.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            if json.loads(pointer.read_text())["step"] >= 50:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate()[1].decode()
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "terminated" and "Traceback" not in err
    assert not (out / "metrics.json").exists()

    assert main(["train", "--quiet", "--resume", str(out)]) == 0
    assert without_times(json.loads((out / "metrics.json").read_text())) == without_times(reference)


def test_sigterm_handler_is_restored(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    main(["eval", str(tmp_path / "missing")])
    assert signal.getsignal(signal.SIGTERM) is before


# ---------------------------------------------------------------- messages that name what to change
def test_eval_data_hints_name_the_flags(run, tmp_path, capsys):
    cols = tmp_path / "cols.csv"
    cols.write_text("body,sentiment\nthe flight was late,negative\n")
    line = refused(capsys, ["eval", str(run), "--data", str(cols)], "no column 'text'", "--text-column")
    assert "data.text_column" not in line
    line = refused(capsys, ["eval", str(run), "--data", str(cols), "--text-column", "body"], "--label-column")
    assert "data.label_column" not in line
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"text,label\ncaf\xe9 au lait,neutral\n")
    line = refused(capsys, ["eval", str(run), "--data", str(latin)], "line 2", "--encoding")
    assert "data.encoding" not in line


def test_examples_of_a_run_without_a_learning_record(tiny_csv, tmp_path, capsys):
    out = tmp_path / "norecord"
    assert main(["train", "--quiet", *tiny_overrides(tiny_csv, out, 10), "curriculum.record=false"]) == 0
    line = refused(capsys, ["examples", str(out)], "no learning record", "curriculum.record")
    assert "not finished" not in line


def test_run_directory_is_announced_only_for_an_accepted_run(tiny_csv, tmp_path, capsys):
    one_class = tmp_path / "one.csv"
    one_class.write_text("text,label\n" + "".join(f"text number {i},positive\n" for i in range(50)))
    assert main(["train", *tiny_overrides(one_class, tmp_path / "refused")]) == 2
    err = capsys.readouterr().err
    assert "single class" in err and "run directory" not in err
    assert not (tmp_path / "refused").exists()

    out = tmp_path / "run"
    assert main(["train", *tiny_overrides(tiny_csv, out, 5)]) == 0
    assert f"run directory: {out}" in capsys.readouterr().err
