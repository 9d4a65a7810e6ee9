"""The model directory: written by models/saved.py only; version-1 directories still load."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from attncoach.atomicfile import atomic_save_safetensors, atomic_write_json
from attncoach.data.tokenizer import encode_texts, save_tokenizer, train_tokenizer
from attncoach.errors import AttncoachError
from attncoach.models.classifier import TextClassifier
from attncoach.models.encoder import EncoderConfig
from attncoach.models.next_item import NextItemModel
from attncoach.models.saved import (
    CALIBRATION_FILE,
    FORMAT_VERSION,
    SavedClassifier,
    SavedRecommender,
    load_model,
    model_config,
    predict_logits,
    write_calibration,
    write_model_config,
)


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
    # version 4 adds int8 models; a float model is still written as 3, which older attncoach reads
    assert config["format_version"] == 3 and FORMAT_VERSION == 4 and config["task"] == "text_classification"
    assert config["format"] == "attncoach.model"
    write_model_config(folder, model_config(model, 16, elastic={"widths": [0.5, 1.0]}))
    assert json.loads((folder / "model_config.json").read_text())["elastic"] == {"widths": [0.5, 1.0]}
    assert SavedClassifier.load(folder).elastic == {"widths": [0.5, 1.0]}


def test_a_directory_from_a_newer_attncoach_is_refused_in_one_line(tmp_path):
    folder, _ = _model_dir(tmp_path, lambda m: {**model_config(m, 16), "format_version": FORMAT_VERSION + 1})
    with pytest.raises(AttncoachError, match="newer attncoach"):
        SavedClassifier.load(folder)


# --- the predictors' inputs and outputs --------------------------------------------------------


@pytest.fixture
def classifier(tmp_path) -> SavedClassifier:
    folder, _ = _model_dir(tmp_path, lambda m: model_config(m, 16))
    return SavedClassifier.load(folder)


def test_one_string_is_one_text(classifier):
    [one] = classifier.predict("good service thanks")
    assert one == classifier.predict(["good service thanks"])[0]
    assert classifier.predict_proba("good service thanks").shape == (1, 3)
    assert len(classifier.predict(("good", "late"))) == 2 and classifier.predict([]) == []


@pytest.mark.parametrize(
    "texts, words",
    [
        (None, "texts must be a string or a list of strings, not None"),
        (5, "not int 5"),
        (b"bytes", "not bytes"),
        ({"text": "x"}, "not dict"),
        (["fine", 3.5], "texts[1] must be a string, not float 3.5"),
        (["fine", None], "texts[1] must be a string, not None"),
    ],
)
def test_texts_that_are_not_strings_are_one_clear_error(classifier, texts, words):
    for method in (classifier.predict, classifier.predict_proba):
        with pytest.raises(AttncoachError) as err:
            method(texts)
        assert words in str(err.value) and "\n" not in str(err.value)


def test_a_bad_batch_size_or_device_is_one_clear_error(classifier, tmp_path):
    with pytest.raises(AttncoachError, match="batch_size must be a positive integer"):
        classifier.predict(["x"], batch_size=0)
    with pytest.raises(AttncoachError, match="device must be cpu or cuda"):
        SavedClassifier.load(classifier.model_dir, device="gpu")


def test_a_model_with_nan_weights_gives_an_error_not_nan_probabilities(classifier):
    with torch.no_grad():
        next(classifier.model.parameters()).fill_(float("nan"))
    with pytest.raises(AttncoachError, match="probabilities are not finite .NaN. for 2 of 2 texts"):
        classifier.predict(["good service", "late again"])


def test_passes_of_similar_lengths_give_the_logits_of_plain_passes(classifier):
    texts = ["good", "good service thanks", "late flight again and again today", "thanks", "the meeting is today"]
    ids = encode_texts(classifier.tokenizer, texts, classifier.max_length)
    plain = predict_logits(classifier.model, ids, 8, classifier.device)
    similar = predict_logits(classifier.model, ids, 8, classifier.device, similar=True)
    torch.testing.assert_close(similar, plain, rtol=1e-5, atol=1e-6)
    expected = torch.softmax(plain, dim=-1).numpy()
    np.testing.assert_allclose(classifier.predict_proba(texts, batch_size=2), expected, rtol=1e-5, atol=1e-6)


def test_a_calibrated_model_divides_its_logits_by_the_temperature(classifier):
    texts = ["good service thanks", "late flight again", "the meeting is today", "thanks again"]
    raw = classifier.predict(texts)
    assert classifier.temperature is None and classifier.calibration is None
    write_calibration(classifier.model_dir, {"method": "temperature", "temperature": 0.25, "fitted_on": "val"})
    calibrated = SavedClassifier.load(classifier.model_dir)
    assert calibrated.temperature == 0.25 and calibrated.calibration["fitted_on"] == "val"
    ids = encode_texts(calibrated.tokenizer, texts, calibrated.max_length)
    logits = predict_logits(calibrated.model, ids, 8, calibrated.device)
    expected = torch.softmax(logits / 0.25, dim=-1).numpy()
    np.testing.assert_allclose(calibrated.predict_proba(texts), expected, rtol=1e-5, atol=1e-7)
    assert not np.allclose(calibrated.predict_proba(texts), torch.softmax(logits, -1).numpy(), atol=1e-3)
    assert [p["label"] for p in calibrated.predict(texts)] == [p["label"] for p in raw]


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[1.5]",
        '{"method": "temperature"}',
        '{"method": "temperature", "temperature": 0}',
        '{"method": "temperature", "temperature": "2"}',
        '{"method": "temperature", "temperature": true}',
        '{"method": "platt", "temperature": 1.5}',
    ],
)
def test_a_damaged_calibration_file_is_one_clear_line_at_load(classifier, content):
    (classifier.model_dir / CALIBRATION_FILE).write_text(content, encoding="utf-8")
    with pytest.raises(AttncoachError) as err:
        load_model(classifier.model_dir)
    assert "calibration.json" in str(err.value) and "\n" not in str(err.value)


def _recommender() -> SavedRecommender:
    torch.manual_seed(0)
    model = NextItemModel(EncoderConfig(vocab_size=6, dim=16, layers=1, heads=2, ffn_dim=32, max_position=8), 5)
    users = {"196": np.array([1, 2, 3]), "7": np.array([4, 5])}
    return SavedRecommender(model.eval(), ["10", "20", "30", "40", "50"], users, 8, torch.device("cpu"))


def test_recommender_takes_one_string_and_integer_ids():
    rec = _recommender()
    assert rec.recommend_many(users="196", k=2) == rec.recommend_many(users=["196"], k=2)
    assert rec.recommend_many(histories="10 20", k=2) == [rec.recommend(history=["10", "20"], k=2)]
    assert rec.recommend(user=196, k=2) == rec.recommend(user="196", k=2)
    assert rec.recommend(history=[10, 20], k=2) == rec.recommend(history=["10", "20"], k=2)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"users": 196}, "users must be a list of user ids, not int 196"),
        ({"users": [None]}, "a user id must be a string, not None"),
        ({"histories": 5}, "histories must be a list of histories, not int 5"),
        ({"histories": [5]}, "a history must be a list of item ids, not int 5"),
        ({"histories": [["10", 2.5]]}, "an item id must be a string, not float 2.5"),
        ({"users": ["196"], "batch_size": 0}, "batch_size must be a positive integer"),
    ],
)
def test_recommender_inputs_of_the_wrong_kind_are_one_clear_error(kwargs, words):
    with pytest.raises(AttncoachError, match=re.escape(words)):
        _recommender().recommend_many(**kwargs, k=2)


def test_a_recommender_with_nan_weights_gives_an_error_not_nan_scores():
    rec = _recommender()
    with torch.no_grad():
        next(rec.model.parameters()).fill_(float("nan"))
    with pytest.raises(AttncoachError, match="scores are not finite"):
        rec.recommend(user="196", k=2)
