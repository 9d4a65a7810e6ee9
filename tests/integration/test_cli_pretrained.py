"""The CLI with a pretrained backbone: a tiny BERT checkpoint written here, trained, evaluated, resumed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attncoach.cli import main
from tinydata import rewind_to_first_checkpoint, tiny_overrides, without_times

transformers = pytest.importorskip("transformers")


def _args(tiny_csv: Path, out: Path, backbone: Path, steps: int = 40) -> list[str]:
    keep = [a for a in tiny_overrides(tiny_csv, out, steps) if not a.startswith(("model.", "data.vocab"))]
    return [
        "train",
        "--quiet",
        *keep,
        f"model.backbone={backbone}",
        "train.lr=1e-3",
        "train.head_lr=5e-3",
        "train.layer_lr_decay=0.8",
    ]


def test_train_eval_predict_resume_with_a_pretrained_backbone(tiny_csv, tiny_bert, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args(tiny_csv, out, tiny_bert)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["macro_f1"] > 0.6, metrics["test"]
    saved = json.loads((out / "model/model_config.json").read_text())["model"]["encoder"]
    assert (saved["dim"], saved["layers"], saved["norm_first"]) == (32, 2, False)  # the backbone's shape
    vocab = json.loads((out / "model/tokenizer.json").read_text())["model"]["vocab"]
    assert "wonderful" in vocab and len(vocab) == len((tiny_bert / "vocab.txt").read_text().split())
    capsys.readouterr()

    assert main(["eval", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["macro_f1"] == pytest.approx(metrics["test"]["macro_f1"])
    assert main(["predict", str(out), "the service was wonderful excellent best"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] in {"negative", "neutral", "positive"}

    # resume from the middle: drop metrics and the newest checkpoint, continue, same result
    rewind_to_first_checkpoint(out)
    assert main(["train", "--quiet", "--resume", str(out)]) == 0
    resumed = json.loads((out / "metrics.json").read_text())
    assert resumed["test"] == metrics["test"] and without_times(resumed)["history"] == without_times(metrics)["history"]


def test_bad_backbones(tiny_csv, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cases = [("./no/such/model", "not found"), ("some-org/some-model", "model.backbone=minilm")]
    for backbone, words in cases:
        assert main(_args(tiny_csv, tmp_path / "out", Path(backbone))) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("error: ") and words in err, err
        assert not (tmp_path / "out").exists()
    empty = tmp_path / "empty-model"
    empty.mkdir()
    assert main(_args(tiny_csv, tmp_path / "out", empty)) == 2
    assert "config.json" in capsys.readouterr().err


def test_frozen_lower_layers_keep_their_pretrained_weights_and_resume_exactly(tiny_csv, tiny_bert, tmp_path, capsys):
    from safetensors.torch import load_file

    from attncoach.models.pretrained import load_backbone

    out = tmp_path / "run"
    assert main([*_args(tiny_csv, out, tiny_bert), "train.freeze_layers=1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    pretrained = load_backbone(tiny_bert).encoder_state
    trained = load_file(out / "model/model.safetensors")
    for name in ("embeddings.word.weight", "layers.0.attn.qkv.weight", "layers.0.ffn.fc2.bias"):
        assert (trained[f"encoder.{name}"] == pretrained[name]).all(), name
    assert not (trained["encoder.layers.1.attn.qkv.weight"] == pretrained["layers.1.attn.qkv.weight"]).all()

    rewind_to_first_checkpoint(out)
    assert main(["train", "--quiet", "--resume", str(out)]) == 0
    resumed = json.loads((out / "metrics.json").read_text())
    assert resumed["test"] == metrics["test"] and without_times(resumed)["history"] == without_times(metrics)["history"]
    capsys.readouterr()

    for extra, words in [
        ("train.freeze_layers=3", "'train.freeze_layers' (3) is more than the 2 layers of backbone"),
        ("model.backbone=scratch", "'train.freeze_layers' needs a pretrained model.backbone"),
    ]:
        assert main([*_args(tiny_csv, tmp_path / "bad", tiny_bert), "train.freeze_layers=3", extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("error: ") and words in err, err
        assert not (tmp_path / "bad").exists()


def test_layers_frozen_part_way_train_until_then_and_resume_exactly(tiny_csv, tiny_bert, tmp_path, capsys):
    from safetensors.torch import load_file

    from attncoach.models.pretrained import load_backbone

    out = tmp_path / "run"
    late = ["train.freeze_layers=1", "train.freeze_after=0.5", "train.keep_checkpoints=4"]
    assert main([*_args(tiny_csv, out, tiny_bert), *late]) == 0  # 40 steps: the freeze comes at step 20
    metrics = json.loads((out / "metrics.json").read_text())
    saved = {
        int(p.name.split("-")[1]): load_file(p / "model.safetensors") for p in (out / "checkpoints").glob("step-*")
    }
    assert sorted(saved) == [10, 20, 30, 40]
    pretrained = load_backbone(tiny_bert).encoder_state
    lower, upper = "encoder.layers.0.attn.qkv.weight", "encoder.layers.1.attn.qkv.weight"
    assert not (saved[10][lower] == pretrained["layers.0.attn.qkv.weight"]).all()  # trained before the freeze
    assert not (saved[10][lower] == saved[20][lower]).all()
    for step in (30, 40):  # and not after it, while the layers above still train
        assert (saved[step][lower] == saved[20][lower]).all()
        assert (saved[step]["encoder.embeddings.word.weight"] == saved[20]["encoder.embeddings.word.weight"]).all()
    assert not (saved[40][upper] == saved[30][upper]).all()

    rewind_to_first_checkpoint(out)  # step 10: the resumed run meets the freeze itself
    assert main(["train", "--quiet", "--resume", str(out)]) == 0
    resumed = json.loads((out / "metrics.json").read_text())
    assert resumed["test"] == metrics["test"] and without_times(resumed)["history"] == without_times(metrics)["history"]
    again = load_file(out / "checkpoints/step-00000040/model.safetensors")
    assert all((again[k] == v).all() for k, v in saved[40].items())
    capsys.readouterr()
