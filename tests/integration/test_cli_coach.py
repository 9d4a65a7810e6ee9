"""The coach through the CLI and the recipe: decisions visible, resume, a real NaN, targets, batch growth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from attncoach.cli import main
from attncoach.errors import AttncoachError
from attncoach.rundir import RunDir
from attncoach.train.recipe import Recipe
from attncoach.train.settings import load_run_config as load_config
from tinydata import rewind_to_first_checkpoint, tiny_overrides, without_times

PLATEAU_EVERY_EVAL = "coach.policies=[{plateau: {patience: 1, min_delta: 0.5, max_decays: 2}}, divergence_guard]"


def _run(tiny_csv: Path, out: Path, steps: int, *extra: str) -> dict:
    assert main(["train", "--quiet", *tiny_overrides(tiny_csv, out, steps), "coach.enabled=true", *extra]) == 0
    return json.loads((out / "metrics.json").read_text())


def _decisions(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "coach.jsonl").read_text().splitlines()]


def _assert_resume_repeats(out: Path, reference: dict) -> None:
    """Resuming the finished run from its first checkpoint gives the same metrics and decision log."""
    logged = (out / "coach.jsonl").read_text()
    rewind_to_first_checkpoint(out)
    assert main(["train", "--quiet", "--resume", str(out)]) == 0
    resumed, reference = without_times(json.loads((out / "metrics.json").read_text())), without_times(reference)
    for key in ("test", "history", "coach", "examples_seen", "steps"):
        assert resumed[key] == reference[key], key
    assert (out / "coach.jsonl").read_text() == logged


def test_coach_decisions_are_logged_summarised_and_applied(tiny_csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *tiny_overrides(tiny_csv, out, 60), "coach.enabled=true", PLATEAU_EVERY_EVAL]) == 0
    err = capsys.readouterr().err
    decisions = _decisions(out)
    assert [(d["policy"], d["knob"], d["new"]) for d in decisions] == [
        ("plateau", "lr_scale", 0.5),
        ("plateau", "lr_scale", 0.25),
        ("plateau", "stop", True),
    ]
    assert decisions[0]["step"] == 20 and "stalled" in decisions[0]["reason"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["coach"]["knobs"]["lr_scale"] == {"start": 1.0, "end": 0.25}
    assert metrics["stopped_early"] and "nothing left to try" in metrics["stop_reason"]
    assert metrics["steps"] == 40, "the stop decision at the 4th evaluation ends the run"
    assert "coach: 3 decision(s) by plateau, divergence_guard" in err and "lr_scale 1 -> 0.25" in err
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    assert "coach/lr_scale" in events.Tags()["scalars"]
    assert {"val/attention_entropy/layer0", "train/lr_scale"} <= set(events.Tags()["scalars"])


def test_coached_run_resumes_with_the_same_decisions(tiny_csv, tmp_path):
    out = tmp_path / "run"
    policies = (
        "coach.policies=[hypergradient_lr, {plateau: {patience: 1, min_delta: 0.5, max_decays: 5}}, "
        "regularisation, {batch_growth: {threshold: 0.001, cooldown: 15}}, divergence_guard]"
    )
    reference = _run(tiny_csv, out, 80, policies, "train.checkpoint_every=20", "coach.noise_every=2")
    assert {d["knob"] for d in _decisions(out)} >= {"lr_scale", "accumulation"}
    _assert_resume_repeats(out, reference)


def test_coach_probes_the_lr_first_and_resumes_after_the_probe(tiny_csv, tmp_path):
    out = tmp_path / "probe"
    # lr 1e-4 is far too small for this tiny model: the probe (1e-4 .. 0.1) must find a larger one
    reference = _run(
        tiny_csv,
        out,
        300,
        "train.lr=1e-4",
        "train.eval_every=10",
        "train.checkpoint_every=10",
        "coach.policies=[{lr_probe: {low: 1, high: 1000}}, divergence_guard, hypergradient_lr, "
        "plateau, regularisation]",
    )
    decisions = _decisions(out)
    probe = [d for d in decisions if d["policy"] == "lr_probe"]
    assert [d["knob"] for d in probe] == ["lr_scale", "rollback", "lr_scale"]
    assert probe[1]["step"] <= 31 and probe[1]["new"] == 0, "at most a tenth of the run, then back to the start"
    assert probe[2]["new"] >= 10, f"the probe should raise the LR a lot, chose {probe[2]['new']}"
    assert decisions[:3] == probe, "nothing else acts while it probes"
    assert reference["history"][0]["step"] > probe[1]["step"], "no evaluation of the probe's steps"
    assert reference["coach"]["policies"] == [
        "lr_probe",
        "divergence_guard",
        "hypergradient_lr",
        "plateau",
        "regularisation",
    ]
    checkpoints = sorted(int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("step-*"))
    assert checkpoints and checkpoints[0] >= probe[1]["step"], "no checkpoint holds the probe's weights"
    _assert_resume_repeats(out, reference)


def test_batch_growth_keeps_the_examples_seen(tiny_csv, tmp_path):
    plain = _run(tiny_csv, tmp_path / "plain", 60, "coach.policies=[divergence_guard]")
    grown = _run(
        tiny_csv,
        tmp_path / "grown",
        60,
        "coach.noise_every=1",
        "coach.policies=[{batch_growth: {threshold: 0.001, cooldown: 10, max_accumulation: 4}}]",
    )
    assert grown["coach"]["knobs"]["accumulation"] == {"start": 1, "end": 4}
    assert grown["examples_seen"] == plain["examples_seen"] == 60 * 16 and grown["steps"] == 60
    assert grown["test"]["macro_f1"] > 0.6


class PoisonedRecipe(Recipe):
    """Puts a NaN into the weights before one step's forward: a real non-finite loss and gradient."""

    poison_at = 25

    def _forward_backward(self, batch, scale):
        if self.state.step == self.poison_at:
            with torch.no_grad():
                self.model.encoder.embeddings.word.weight[5:50] = float("nan")
        return super()._forward_backward(batch, scale)


def test_divergence_guard_survives_a_real_nan(tiny_csv, tmp_path):
    out = tmp_path / "nan"
    cfg = load_config(
        None,
        [
            *tiny_overrides(tiny_csv, out, 60),
            "coach.enabled=true",
            "coach.policies=[{divergence_guard: {snapshot_every: 10}}]",
        ],
    )
    metrics = PoisonedRecipe(cfg, RunDir(out), quiet=True).run()
    decisions = _decisions(out)
    assert [d["knob"] for d in decisions] == ["rollback", "lr_scale"]
    # snapshots at steps 10 and 20: back to the older one, in case the newest already holds damage
    assert decisions[0]["step"] == 26 and decisions[0]["new"] == 10
    assert "non-finite" in decisions[0]["reason"]
    assert metrics["test"]["macro_f1"] > 0.6 and metrics["steps"] == 60
    assert all(h["val_loss"] == h["val_loss"] for h in metrics["history"]), "no NaN after the rollback"


class TwicePoisonedRecipe(PoisonedRecipe):
    def _forward_backward(self, batch, scale):
        if self.state.step in (25, 26):
            with torch.no_grad():
                self.model.encoder.embeddings.word.weight[5:50] = float("nan")
        return Recipe._forward_backward(self, batch, scale)


def test_a_run_stopped_before_its_first_evaluation_is_evaluated_and_a_nan_model_is_not_kept(tiny_csv, tmp_path):
    out = tmp_path / "stopped"
    cfg = load_config(
        None,
        [
            *tiny_overrides(tiny_csv, out, 60),
            "train.eval_every=100",
            "coach.enabled=true",
            "coach.policies=[{divergence_guard: {snapshot_every: 10, max_rollbacks: 1}}]",
        ],
    )
    recipe = TwicePoisonedRecipe(cfg, RunDir(out), quiet=True)
    with pytest.raises(AttncoachError, match=r"training diverged: .* \(the last at step 27\), so no model was kept"):
        recipe.run()  # the stop leaves the poisoned (NaN) weights: evaluated, but never the best model
    assert recipe.state.stopped_early and "rollbacks in a row did not help" in recipe.state.stop_reason
    assert [h["step"] for h in recipe.state.history] == [27] and recipe.state.history[0]["val_loss"] is None
    assert not (out / "model" / "model.safetensors").exists() and not (out / "metrics.json").exists()


def test_target_stops_the_run(tiny_csv, tmp_path):
    metrics = _run(
        tiny_csv,
        tmp_path / "t",
        200,
        "train.target={metric: accuracy, value: 0.6}",
        "coach.policies=[divergence_guard]",
    )
    assert metrics["stopped_early"] and metrics["stop_reason"].startswith("target reached: val accuracy")
    assert metrics["steps"] < 200 and metrics["target"]["reached"]


def test_bad_coach_config_leaves_nothing_behind(tiny_csv, tmp_path, capsys):
    out = tmp_path / "bad"
    assert main(["train", *tiny_overrides(tiny_csv, out, 10), "coach.enabled=true", "coach.policies=[warp]"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: unknown coach policy 'warp' (known: batch_growth, divergence_guard, hypergradient_lr, lr_probe, "
        "plateau, regularisation)"
    ]
    assert not out.exists()
