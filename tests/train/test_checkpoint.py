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


def _damage(path, name="model.safetensors"):
    data = bytearray((path / name).read_bytes())
    data[-1] ^= 0xFF
    (path / name).write_bytes(bytes(data))


def test_load_latest_falls_back_to_the_older_checkpoint_with_a_warning(tmp_path, caplog):
    store = CheckpointStore(tmp_path, keep=2)
    _save(store, 10)
    _damage(_save(store, 20))
    with caplog.at_level("WARNING", logger="attncoach"):
        ckpt = store.load_latest()
    assert ckpt.state["trainer"]["step"] == 10 and ckpt.path.name == "step-00000010"
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "step-00000020" in warning and "corrupted" in warning and "older checkpoint step-00000010" in warning


def test_load_latest_uses_the_pointer_and_survives_a_broken_one(tmp_path, caplog):
    store = CheckpointStore(tmp_path, keep=3)
    for step in (10, 20, 30):
        _save(store, step)
    store.pointer.write_text(json.dumps({"latest": "step-00000020", "step": 20}))
    assert store.load_latest().state["trainer"]["step"] == 20  # the pointer decides, as before
    store.pointer.write_text("{not json")
    with caplog.at_level("WARNING", logger="attncoach"):
        assert store.load_latest().state["trainer"]["step"] == 30
    assert "pointer" in caplog.text


def test_load_latest_refuses_when_every_checkpoint_is_damaged(tmp_path):
    store = CheckpointStore(tmp_path, keep=2)
    _damage(_save(store, 10), "state.json")
    _damage(_save(store, 20))
    with pytest.raises(AttncoachError, match="no checkpoint of .* can be read") as error:
        store.load_latest()
    message = str(error.value)
    assert "\n" not in message and "step-00000020" in message and "step-00000010" in message


def test_load_latest_without_checkpoints(tmp_path):
    assert CheckpointStore(tmp_path / "checkpoints").load_latest() is None
