"""Checkpoints: atomic layout, verification, refusal of damaged files."""

import json

import pytest
import torch

from attncoach.atomicfile import atomic_save_safetensors
from attncoach.errors import AttncoachError
from attncoach.train.checkpoint import CheckpointStore, load_weights


def _save(store, step):
    model = {"w": torch.arange(6.0).reshape(2, 3) + step}
    opt = {
        "state": {0: {"step": torch.tensor(float(step)), "exp_avg": torch.ones(3)}},
        "param_groups": [{"lr": 0.1, "betas": (0.9, 0.98), "params": [0]}],
    }
    return store.save(step, model, opt, {"torch": torch.get_rng_state()}, {"trainer": {"step": step}})


def test_save_load_round_trip_and_pruning(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints", keep=2)
    for step in (10, 20, 30):
        _save(store, step)
    assert store.latest().name == "step-00000030"
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "latest.json",
        "step-00000020",
        "step-00000030",
    ]
    ckpt = store.load(store.latest())
    assert torch.equal(ckpt.model["w"], torch.arange(6.0).reshape(2, 3) + 30)
    assert ckpt.optimizer["param_groups"][0]["betas"] == (0.9, 0.98)
    assert ckpt.state["trainer"]["step"] == 30
    assert torch.equal(ckpt.rng["torch"], torch.get_rng_state())


def test_no_checkpoint_yet(tmp_path):
    assert CheckpointStore(tmp_path / "checkpoints").latest() is None


@pytest.mark.parametrize("victim", ["model.safetensors", "optimizer.pt", "state.json"])
def test_truncated_file_is_refused(tmp_path, victim):
    store = CheckpointStore(tmp_path)
    path = _save(store, 5)
    data = (path / victim).read_bytes()
    (path / victim).write_bytes(data[: len(data) // 2])
    with pytest.raises(AttncoachError, match="truncated or corrupted"):
        store.load(path)


def test_flipped_byte_is_refused(tmp_path):
    store = CheckpointStore(tmp_path)
    path = _save(store, 5)
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(AttncoachError, match="corrupted"):
        store.load(path)


def test_damaged_pointer_and_missing_files(tmp_path):
    store = CheckpointStore(tmp_path)
    path = _save(store, 5)
    (path / "manifest.json").unlink()
    with pytest.raises(AttncoachError, match="manifest.json is missing"):
        store.load(path)
    store.pointer.write_text("{not json")
    with pytest.raises(AttncoachError, match="pointer"):
        store.latest()
    store.pointer.write_text(json.dumps({"latest": "step-99999999"}))
    with pytest.raises(AttncoachError, match="missing"):
        store.latest()


def test_atomic_weights_and_damaged_weights(tmp_path):
    path = tmp_path / "model.safetensors"
    atomic_save_safetensors({"a": torch.ones(2)}, path)
    assert torch.equal(load_weights(path)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temp file left
    path.write_bytes(b"garbage")
    with pytest.raises(AttncoachError, match="damaged"):
        load_weights(path)
