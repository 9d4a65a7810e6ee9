"""scalars.jsonl: every logged group appended as one line, trimmed to the checkpoint on resume."""

from __future__ import annotations

import json
from types import SimpleNamespace

from attncoach.report.runfiles import read_scalars
from attncoach.train.history import ScalarHistory


def _recipe(step: int) -> SimpleNamespace:
    return SimpleNamespace(state=SimpleNamespace(step=step))


def test_lines_are_written_at_once_with_non_finite_values_as_null(tmp_path):
    path = tmp_path / "scalars.jsonl"
    history = ScalarHistory(path)
    history.on_train_start(_recipe(0))
    history.on_log(None, 5, "train", {"loss": 1.5, "grad_norm": float("nan")})
    lines = path.read_text().splitlines()  # flushed before close
    assert json.loads(lines[0]) == {"step": 5, "group": "train", "values": {"loss": 1.5, "grad_norm": None}}
    history.on_log(None, 10, "val", {"macro_f1": 0.5})
    history.close()
    assert [e["group"] for e in read_scalars(path)] == ["train", "val"]


def test_resuming_keeps_the_lines_the_checkpoint_counted(tmp_path):
    path = tmp_path / "scalars.jsonl"
    history = ScalarHistory(path)
    history.on_train_start(_recipe(0))
    for step in (5, 10):
        history.on_log(None, step, "train", {"loss": 1.0 / step})
    state = json.loads(json.dumps(history.state_dict()))  # the checkpoint at step 10
    history.on_log(None, 10, "curriculum", {"box_0": 3.0})  # logged at the checkpoint's step, after it
    history.on_log(None, 15, "train", {"loss": 0.1})
    history.close()
    with open(path, "a") as fh:
        fh.write('{"step": 20, "group": "tr')  # the process was killed mid-line
    resumed = ScalarHistory(path)
    resumed.load_state_dict(state, None)
    resumed.on_train_start(_recipe(10))
    resumed.on_log(None, 10, "curriculum", {"box_0": 3.0})
    resumed.close()
    assert [(e["step"], e["group"]) for e in read_scalars(path)] == [(5, "train"), (10, "train"), (10, "curriculum")]


def test_an_older_checkpoint_cuts_by_step_and_a_fresh_start_empties_the_file(tmp_path):
    path = tmp_path / "scalars.jsonl"
    path.write_text(
        "".join(json.dumps({"step": s, "group": "train", "values": {"loss": 1.0}}) + "\n" for s in (5, 10, 15))
    )
    old = ScalarHistory(path)
    old.load_state_dict(None, None)  # the checkpoint holds no history entry
    old.on_train_start(_recipe(10))
    assert [e["step"] for e in read_scalars(path)] == [5, 10] and old.lines == 2
    ScalarHistory(path).on_train_start(_recipe(0))  # resumed with no checkpoint: it starts over
    assert read_scalars(path) == []
