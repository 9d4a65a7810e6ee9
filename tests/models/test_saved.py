"""The model directory: written by models/saved.py only; version-1 directories still load."""

from __future__ import annotations

import json

import pytest
import torch

from attncoach.atomicfile import atomic_save_safetensors, atomic_write_json
from attncoach.data.tokenizer import save_tokenizer, train_tokenizer
from attncoach.errors import AttncoachError
from attncoach.models.classifier import TextClassifier
from attncoach.models.encoder import EncoderConfig
from attncoach.models.saved import FORMAT_VERSION, SavedClassifier, load_model, model_config, write_model_config


def _model_dir(tmp_path, config_of):
    texts = ["good service thanks", "late flight again", "the meeting is today"] * 5
    tokenizer = train_tokenizer(texts, "wordpiece", vocab_size=100, min_frequency=1)
    model = TextClassifier(
        EncoderConfig(vocab_size=tokenizer.get_vocab_size(), dim=16, layers=1, heads=2, ffn_dim=32, max_position=16),
        num_labels=3,
    )
    folder = tmp_path / "model"
    folder.mkdir()
    atomic_save_safetensors(model.state_dict(), folder / "model.safetensors")
    save_tokenizer(tokenizer, folder / "tokenizer.json")
    atomic_write_json(folder / "labels.json", ["negative", "neutral", "positive"])
    atomic_write_json(folder / "model_config.json", config_of(model))
    return folder, model


def test_a_version_1_directory_written_the_old_way_loads_as_text_classification(tmp_path):
    # exactly what attncoach wrote before the task seam: no format_version, no task
    folder, model = _model_dir(
        tmp_path,
        lambda m: {
            "format": "attncoach.text-classifier",
            "attncoach_version": "0.1.0",
            "model": m.config_dict(),
            "max_length": 16,
        },
    )
    loaded = SavedClassifier.load(folder)
    assert loaded.task == "text_classification"
    ids = torch.randint(5, 50, (2, 6))
    torch.testing.assert_close(loaded.model(ids), model.eval()(ids))
    assert len(loaded.predict(["good service"])) == 1


def test_a_version_2_directory_loads(tmp_path):
    # what attncoach wrote with the task seam, before the format was named for every task
    folder, model = _model_dir(
        tmp_path,
        lambda m: {
            "format": "attncoach.text-classifier",
            "format_version": 2,
            "attncoach_version": "0.1.0",
            "task": "text_classification",
            "model": m.config_dict(),
            "max_length": 16,
        },
    )
    loaded = load_model(folder)
    assert isinstance(loaded, SavedClassifier) and loaded.task == "text_classification"
    ids = torch.randint(5, 50, (2, 6))
    torch.testing.assert_close(loaded.model(ids), model.eval()(ids))


def test_a_model_of_another_task_is_refused_by_the_task_s_loader(tmp_path):
    folder, model = _model_dir(tmp_path, lambda m: model_config(m, 16, task="next_item"))
    with pytest.raises(AttncoachError, match="holds a next_item model, not a text_classification one"):
        SavedClassifier.load(folder)


def test_the_current_format_records_its_version_and_task(tmp_path):
    folder, model = _model_dir(tmp_path, lambda m: model_config(m, 16))
    config = json.loads((folder / "model_config.json").read_text())
    assert config["format_version"] == FORMAT_VERSION == 3 and config["task"] == "text_classification"
    assert config["format"] == "attncoach.model"
    write_model_config(folder, model_config(model, 16, elastic={"widths": [0.5, 1.0]}))
    assert json.loads((folder / "model_config.json").read_text())["elastic"] == {"widths": [0.5, 1.0]}
    assert SavedClassifier.load(folder).elastic == {"widths": [0.5, 1.0]}


def test_a_directory_from_a_newer_attncoach_is_refused_in_one_line(tmp_path):
    folder, _ = _model_dir(tmp_path, lambda m: {**model_config(m, 16), "format_version": FORMAT_VERSION + 1})
    with pytest.raises(AttncoachError, match="newer attncoach"):
        SavedClassifier.load(folder)
