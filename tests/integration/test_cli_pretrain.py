"""attncoach pretrain: masked-language modelling on unlabelled texts, then fine-tuning from it (model.backbone)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from attncoach.cli import main
from attncoach.weights import load_weights
from clicheck import refused
from tinydata import rewind_to_first_checkpoint, tiny_masked_lm_overrides, tiny_overrides, without_times, write_texts


def _pretrain_args(texts: Path, out: Path, steps: int = 40) -> list[str]:
    return [a for a in tiny_masked_lm_overrides(texts, out, steps) if a != "task=masked_lm"]


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> Path:
    return write_texts(tmp_path_factory.mktemp("texts") / "texts.txt")


@pytest.fixture(scope="module")
def pretrained(texts, tmp_path_factory) -> Path:
    """One finished pretraining run, shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("pretrain") / "run"
    assert main(["pretrain", "--quiet", *_pretrain_args(texts, out)]) == 0
    return out


def test_pretraining_learns_and_writes_a_backbone_directory(pretrained, capsys):
    metrics = json.loads((pretrained / "metrics.json").read_text())
    assert metrics["task"] == "masked_lm" and metrics["primary"] == "masked_accuracy"
    history = metrics["history"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]  # it learns the corpus's words
    assert 0 <= metrics["test"]["masked_accuracy"] <= 1 and metrics["test"]["perplexity"] > 1
    assert sorted(p.name for p in (pretrained / "model").iterdir()) == [
        "model.safetensors",
        "model_config.json",
        "tokenizer.json",
    ]
    assert main(["eval", str(pretrained), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["masked_accuracy"] == pytest.approx(metrics["test"]["masked_accuracy"])


def test_fine_tuning_starts_from_the_pretrained_encoder_and_tokenizer(pretrained, tiny_csv, tmp_path, capsys):
    out = tmp_path / "finetuned"
    # every encoder layer frozen: the fine-tuned encoder must equal the pretrained one exactly
    args = [*tiny_overrides(tiny_csv, out, 20), f"model.backbone={pretrained}", "train.freeze_layers=2"]
    assert main(["train", *args]) == 0
    err = capsys.readouterr().err
    assert "(attncoach)" in err and "dim 16, 2 layers" in err, err  # the architecture is the pretrained one
    assert (out / "model/tokenizer.json").read_text() == (pretrained / "model/tokenizer.json").read_text()
    tuned, source = load_weights(out / "model/model.safetensors"), load_weights(pretrained / "model/model.safetensors")
    encoder = [k for k in source if k.startswith("encoder.")]
    assert encoder and all(torch.equal(tuned[k], source[k]) for k in encoder)
    assert not any(k.startswith("mlm_head.") for k in tuned)  # a fresh classification head instead
    assert json.loads((out / "metrics.json").read_text())["task"] == "text_classification"


def test_a_resumed_pretraining_run_ends_exactly_as_an_uninterrupted_one(texts, tmp_path):
    out = tmp_path / "run"
    assert main(["pretrain", "--quiet", *_pretrain_args(texts, out), "train.keep_checkpoints=5"]) == 0
    reference = json.loads((out / "metrics.json").read_text())
    rewind_to_first_checkpoint(out)  # back to step 10 of 40: the later batches mask anew
    assert main(["pretrain", "--quiet", "--resume", str(out)]) == 0
    resumed = json.loads((out / "metrics.json").read_text())
    assert without_times(resumed) == without_times(reference)


def test_pretraining_continues_from_a_pretrained_encoder(pretrained, texts, tmp_path, capsys):
    out = tmp_path / "continued"
    assert main(["pretrain", *_pretrain_args(texts, out, 10), f"model.backbone={pretrained}"]) == 0
    first = json.loads((out / "metrics.json").read_text())["history"][0]
    before = json.loads((pretrained / "metrics.json").read_text())["val"]
    assert first["val_masked_accuracy"] >= before["masked_accuracy"] - 0.15  # not from scratch: head and encoder kept


def test_continued_pretraining_of_a_hugging_face_bert(tiny_bert, texts, tiny_csv, tmp_path):
    out = tmp_path / "bert-mlm"
    args = [a for a in _pretrain_args(texts, out, 10) if not a.startswith("model.")]
    assert main(["pretrain", "--quiet", *args, f"model.backbone={tiny_bert}"]) == 0
    assert (out / "model/tokenizer.json").is_file()
    tuned = tmp_path / "bert-tuned"
    assert main(["train", "--quiet", *tiny_overrides(tiny_csv, tuned, 5), f"model.backbone={out}"]) == 0


def test_pretrain_refuses_a_config_of_another_task(texts, tmp_path, capsys):
    config = tmp_path / "translate.yaml"
    config.write_text("task: translation\n")
    refused(capsys, ["pretrain", "--config", str(config), f"data.path={texts}"], "task masked_lm", "translation")
    assert not (tmp_path / "run").exists()


def test_an_empty_text_file_is_refused_and_nothing_is_written(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    out = tmp_path / "run"
    refused(capsys, ["pretrain", *_pretrain_args(empty, out)], "no text in", str(empty))
    assert not out.exists()


def test_a_file_without_the_text_column_is_refused_naming_the_key(tmp_path, capsys):
    table = tmp_path / "tickets.csv"
    table.write_text("body,label\nmy card is late,card\n")
    out = tmp_path / "run"
    refused(capsys, ["pretrain", *_pretrain_args(table, out)], "no column 'text'", "data.text_column")
    assert not out.exists()


def test_a_mask_probability_outside_0_1_is_refused_at_config_time(texts, tmp_path, capsys):
    out = tmp_path / "run"
    refused(capsys, ["pretrain", *_pretrain_args(texts, out), "data.mask_probability=1"], "data.mask_probability")
    assert not out.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["predict", "RUN", "a text"],
        ["serve", "RUN"],
        ["export", "RUN", "--quantize", "int8", "--out", "OUT"],
        ["export", "RUN", "--family", "--out", "OUT"],
        ["robustness", "RUN"],
        ["select", "RUN", "--pool", "POOL", "--budget", "2", "--out", "OUT.csv"],
        ["translate", "RUN", "a text"],
        ["recommend", "RUN", "--history", "a"],
    ],
)
def test_commands_for_other_models_say_what_a_pretrained_encoder_is_for(pretrained, texts, tmp_path, capsys, command):
    names = {
        "RUN": str(pretrained),
        "OUT": str(tmp_path / "out"),
        "OUT.csv": str(tmp_path / "out.csv"),
        "POOL": str(texts),
    }
    refused(capsys, [names.get(a, a) for a in command], "pretrained encoder", "model.backbone")
    assert not list(tmp_path.glob("out*"))


def test_a_smaller_sub_net_of_a_pretrained_encoder_exports_and_fine_tunes(pretrained, tiny_csv, tmp_path):
    small = tmp_path / "small"
    assert main(["export", str(pretrained), "--width", "0.5", "--out", str(small)]) == 0
    out = tmp_path / "tuned"
    assert main(["train", "--quiet", *tiny_overrides(tiny_csv, out, 5), f"model.backbone={small}"]) == 0
