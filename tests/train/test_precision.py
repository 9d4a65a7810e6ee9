"""train.precision: bf16 autocast on the CPU, what ``auto`` picks, and a bf16 run reported in float32."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from attncoach.cli import main
from attncoach.models.saved import autocast_for
from attncoach.train import recipe
from attncoach.train.recipe import uses_bf16
from tinydata import tiny_overrides

CPU = torch.device("cpu")


def test_autocast_for_runs_matrix_products_in_bf16_on_the_cpu_only_when_asked():
    layer, x = torch.nn.Linear(8, 4), torch.randn(2, 8)
    with autocast_for(CPU, True):
        assert layer(x).dtype == torch.bfloat16
    with autocast_for(CPU, False):
        assert layer(x).dtype == torch.float32


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_exactly_where_the_cpu_has_native_bf16(monkeypatch, native):
    monkeypatch.setattr(recipe, "cpu_has_native_bf16", lambda: native)
    assert uses_bf16(CPU, "auto") is native
    assert uses_bf16(CPU, "fp32") is False


def test_bf16_on_a_cpu_without_native_bf16_is_honoured_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(recipe, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="attncoach"):
        assert uses_bf16(CPU, "bf16") is True
    assert "no native bf16" in caplog.text


def test_the_cpu_bf16_query_answers_a_bool():
    assert isinstance(recipe.cpu_has_native_bf16(), bool)


def test_a_bf16_run_reports_the_float32_figures_that_eval_gives(tiny_csv, tmp_path, capsys):
    """Training runs in bf16; metrics.json's val/test and the temperature are those of the saved model in float32."""
    out = tmp_path / "run"
    assert main(["train", "--quiet", *tiny_overrides(tiny_csv, out, 40), "train.precision=bf16"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["precision"] == "bf16"
    capsys.readouterr()
    assert main(["eval", str(out), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["macro_f1"] == pytest.approx(metrics["test"]["macro_f1"])
    assert evaluated["loss"] == pytest.approx(metrics["test"]["loss"], rel=1e-5)
    assert evaluated["ece"] == pytest.approx(metrics["test"]["ece"], abs=1e-6)


def test_an_fp32_run_says_so(tiny_csv, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--quiet", *tiny_overrides(tiny_csv, out, 10), "train.precision=fp32"]) == 0
    assert json.loads((out / "metrics.json").read_text())["precision"] == "fp32"


def test_next_item_scores_stay_float32_under_bf16_autocast():
    """Ranking thousands of items in bf16 would round their scores into ties; the item product runs in float32."""
    from attncoach.models.encoder import EncoderConfig
    from attncoach.models.next_item import NextItemModel

    torch.manual_seed(0)
    model = NextItemModel(EncoderConfig(vocab_size=2001, dim=16, layers=1, heads=2, ffn_dim=32, pad_id=0), 2000)
    history = torch.randint(1, 2001, (2, 6))
    with autocast_for(CPU, True):
        hidden = model(history)  # the encoder's products ran in bf16; its final LayerNorm gives float32
        plain = torch.nn.functional.linear(hidden, model.item_embedding.weight)
        scores = model.next_item_scores(history)
        logits = model.item_logits(hidden)
    assert plain.dtype == torch.bfloat16  # what autocast would have made of the item product
    assert scores.dtype == logits.dtype == torch.float32
    assert torch.equal(logits, model.item_logits(hidden))  # the same hidden states, outside autocast
    assert len(torch.unique(scores[0, 1:])) > 1990 > len(torch.unique(plain[0, -1, 1:]))  # bf16: ties
