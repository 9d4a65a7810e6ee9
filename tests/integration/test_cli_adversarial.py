"""Adversarial training through the CLI: with sub-nets and the coach, resumed exactly, bad settings refused."""

from __future__ import annotations

import json

import pytest

from attncoach.cli import main
from tinydata import rewind_to_first_checkpoint, tiny_overrides, without_times


def _scalars(out, key: str) -> list[float]:
    rows = [json.loads(line) for line in (out / "scalars.jsonl").read_text().splitlines()]
    return [r["values"][key] for r in rows if r.get("group") == "train" and key in r.get("values", {})]


@pytest.mark.parametrize("method", ["fgm", "pgd", "freelb"])
def test_each_method_trains_a_supernet_with_the_coach(tiny_csv, tmp_path, method):
    out = tmp_path / method
    extra = [
        f"robust.method={method}",
        "robust.start_step=3",
        "elastic.enabled=true",
        "coach.enabled=true",
        "coach.policies=[divergence_guard, batch_growth]",  # batch growth measures gradient noise on half batches
        "coach.noise_every=2",
    ]
    assert main(["train", "--quiet", *tiny_overrides(tiny_csv, out, 30), *extra]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["nonfinite_steps"] == 0 and metrics["steps"] == 30
    assert len(_scalars(out, "adv_loss")) >= 4


def test_a_resumed_adversarial_run_ends_as_an_uninterrupted_one(tiny_csv, tmp_path):
    out = tmp_path / "run"
    args = [*tiny_overrides(tiny_csv, out, 40), "robust.method=pgd", "robust.steps=2", "train.checkpoint_every=10"]
    assert main(["train", "--quiet", *args]) == 0
    reference = json.loads((out / "metrics.json").read_text())
    rewind_to_first_checkpoint(out)
    assert main(["train", "--quiet", "--resume", str(out)]) == 0
    assert without_times(json.loads((out / "metrics.json").read_text())) == without_times(reference)


@pytest.mark.parametrize(
    "setting, message",
    [
        ("robust.epsilon=0", "config key 'robust.epsilon' must be positive"),
        ("robust.epsilon=-1", "config key 'robust.epsilon' must be positive"),
        ("robust.steps=0", "config key 'robust.steps' must be at least 1"),
        ("robust.method=vat", "config key 'robust.method' must be one of none, fgm, pgd, freelb"),
        ("augment.char_noise=1.2", "config key 'augment.char_noise' must be in [0, 1]"),
        ("augment.word_dropout=-0.1", "config key 'augment.word_dropout' must be in [0, 1]"),
    ],
)
def test_bad_settings_are_one_line_and_nothing_is_written(tiny_csv, tmp_path, capsys, setting, message):
    out = tmp_path / "run"
    assert main(["train", "--quiet", *tiny_overrides(tiny_csv, out, 5), setting]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists()
