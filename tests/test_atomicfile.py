"""Atomic writers: files get the permissions of any other file the run writes."""

import json
import math
import os
import stat

import pytest
import torch

from attncoach.atomicfile import atomic_save_safetensors, atomic_write_json, atomic_write_text, json_safe
from attncoach.train.checkpoint import CheckpointStore


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_safetensors_get_the_mode_open_gives(tmp_path, umask):
    with open(tmp_path / "plain.txt", "w") as fh:
        fh.write("x")
    expected = _mode(tmp_path / "plain.txt")
    assert expected == 0o666 & ~umask
    atomic_save_safetensors({"a": torch.ones(2)}, tmp_path / "model.safetensors")
    atomic_write_text(tmp_path / "config.yaml", "a: 1\n")
    assert _mode(tmp_path / "model.safetensors") == expected  # was 0600 whatever the umask
    assert _mode(tmp_path / "config.yaml") == expected


def test_checkpoint_weights_get_the_mode_of_the_other_checkpoint_files(tmp_path, umask):
    model = {"w": torch.ones(2, 3)}
    path = CheckpointStore(tmp_path).save(1, model, {"state": {}, "param_groups": []}, {}, {"trainer": {}})
    assert _mode(path / "model.safetensors") == _mode(path / "state.json") == 0o666 & ~umask


def test_json_files_write_non_finite_numbers_as_null(tmp_path):
    data = {"loss": math.nan, "rows": [{"f1": 0.5, "ms": math.inf}], "n": 3, "name": "x"}
    assert json_safe(data) == {"loss": None, "rows": [{"f1": 0.5, "ms": None}], "n": 3, "name": "x"}
    atomic_write_json(tmp_path / "m.json", data)
    text = (tmp_path / "m.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["rows"][0] == {"f1": 0.5, "ms": None}
