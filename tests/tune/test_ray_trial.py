"""A Ray trial's checkpoints: what a PBT exploit hands from the donor's run to the exploiting trial's run, and
what a trial's own checkpoint restores (no Ray needed: the checkpoints are directories)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from attncoach.cli import main
from attncoach.rundir import RunDir
from attncoach.train.checkpoint import CheckpointStore
from attncoach.train.recipe import Recipe
from attncoach.train.settings import load_run_config
from attncoach.tune.ray_trial import (
    COACH_KEY,
    TrialPlan,
    adopt_checkpoint,
    has_own_checkpoint,
    pack_checkpoint,
    trial_number,
)
from attncoach.tune.space import parse_space
from tinydata import tiny_overrides, write_corpus


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory) -> dict[str, RunDir]:
    """Two coached tiny runs at different learning rates: the donor and the trial that exploits it."""
    root = tmp_path_factory.mktemp("pbt")
    data = write_corpus(root / "tiny.csv")
    runs = {}
    for name, lr in (("donor", "5e-3"), ("trial", "1e-3")):
        args = [a for a in tiny_overrides(data, root / name, 20) if not a.startswith(("train.lr", "coach.enabled"))]
        assert main(["train", "--quiet", *args, f"train.lr={lr}", "coach.enabled=true"]) == 0
        runs[name] = RunDir(root / name)
    return runs


@pytest.fixture
def runs(finished_runs, tmp_path) -> dict[str, RunDir]:
    """Copies of the two runs (an exploit changes the trial's)."""
    return {name: RunDir(shutil.copytree(run.path, tmp_path / name)) for name, run in finished_runs.items()}


def _packed(run: RunDir, dest: Path) -> Path:
    """The Ray checkpoint of ``run``'s latest recipe checkpoint, as the trial reports it."""
    latest = CheckpointStore(run.checkpoints).latest()
    dest.mkdir()
    pack_checkpoint(latest, run, dest, int(latest.name.split("-")[1]))
    return dest


def _resumed(run: RunDir) -> Recipe:
    recipe = Recipe(load_run_config(run.config), run, resume=True, quiet=True)
    recipe.setup()
    return recipe


def _entry(recipe: Recipe, key: str) -> dict:
    return next(cb for cb in recipe.callbacks if cb.key == key).state_dict()


def test_an_exploit_continues_from_the_donors_whole_checkpoint_under_the_explored_config(runs, tmp_path):
    donor, trial = runs["donor"], runs["trial"]
    packed = _packed(donor, tmp_path / "ray-checkpoint")
    given = CheckpointStore(donor.checkpoints).load_latest()
    explored = load_run_config(trial.config, ["train.lr=6e-3"])  # PBT perturbed the donor's 5e-3 by x1.2
    record = adopt_checkpoint(packed, trial, explored, coach_state=True)
    assert record["donor"] == str(donor.path.resolve()) and record["coach_state"] == "donor"
    assert record["step"] == given.state["trainer"]["step"] == 20 and record["lr"] == 6e-3
    assert [json.loads(line) for line in (trial.path / "exploits.jsonl").read_text().splitlines()] == [record]
    recipe = _resumed(trial)
    try:
        assert recipe.cfg.train.lr == 6e-3 and recipe.state.step == 20
        weights = recipe.model.state_dict()
        assert all(torch.equal(weights[name], value) for name, value in given.model.items())
        assert _entry(recipe, COACH_KEY) == given.state[COACH_KEY]  # the coach goes on as the donor's had learned
        assert _entry(recipe, "curriculum") == given.state["curriculum"]
        assert recipe.state.history == given.state["trainer"]["history"]
        # the explored LR is what the coach's scale multiplies from now on: every group's base LR x 6e-3 / 5e-3
        donor_lrs = [g["base_lr"] for g in given.optimizer["param_groups"]]
        assert [g["base_lr"] for g in recipe.optimizer.param_groups] == pytest.approx([lr * 1.2 for lr in donor_lrs])
        moments = recipe.optimizer.state_dict()["state"]
        assert all(torch.equal(moments[k]["exp_avg"], v["exp_avg"]) for k, v in given.optimizer["state"].items())
    finally:
        recipe.close()
    # the best model so far is the donor's too: a trial ending right after the exploit ships the donor's best
    assert (trial.model / "model.safetensors").read_bytes() == (donor.model / "model.safetensors").read_bytes()


def test_without_the_coach_state_the_exploiting_trial_keeps_its_own_coach(runs, tmp_path):
    donor, trial = runs["donor"], runs["trial"]
    own = CheckpointStore(trial.checkpoints).load_latest().state[COACH_KEY]
    given = CheckpointStore(donor.checkpoints).load_latest()
    assert own != given.state[COACH_KEY]
    explored = load_run_config(trial.config, ["train.lr=5e-3"])
    record = adopt_checkpoint(_packed(donor, tmp_path / "ray-checkpoint"), trial, explored, coach_state=False)
    assert record["coach_state"] == "own"
    recipe = _resumed(trial)
    try:
        assert _entry(recipe, COACH_KEY) == own and _entry(recipe, COACH_KEY) != given.state[COACH_KEY]
        weights = recipe.model.state_dict()
        assert all(torch.equal(weights[name], value) for name, value in given.model.items())  # weights: the donor's
    finally:
        recipe.close()


def test_a_trials_own_checkpoint_resumes_its_run_as_it_was(runs, tmp_path):
    trial = runs["trial"]
    packed = _packed(trial, tmp_path / "ray-checkpoint")
    config_before = trial.config.read_bytes()
    for old in CheckpointStore(trial.checkpoints).kept():  # e.g. a retry on a machine without the run's checkpoints
        shutil.rmtree(old)
    assert adopt_checkpoint(packed, trial, load_run_config(trial.config)) is None
    assert trial.config.read_bytes() == config_before and not (trial.path / "exploits.jsonl").exists()
    restored = CheckpointStore(trial.checkpoints).load_latest()
    assert restored.state == json.loads((packed / "state.json").read_text())


def test_a_trial_ray_restarts_without_a_checkpoint_resumes_from_its_own(runs, tmp_path):
    trial = runs["trial"]  # tune stopped after its report, before Ray saved the experiment's state
    assert has_own_checkpoint(trial)
    assert not has_own_checkpoint(RunDir(tmp_path / "never-started"))
    for old in CheckpointStore(trial.checkpoints).kept():  # stopped before its first checkpoint
        shutil.rmtree(old)
    (trial.checkpoints / "latest.json").unlink()
    assert not has_own_checkpoint(trial)
    (trial.checkpoints / "latest.json").write_text("{broken")
    assert not has_own_checkpoint(trial), "a damaged pointer: the trial starts over"


def test_a_damaged_ray_checkpoint_is_one_line(runs, tmp_path):
    from attncoach.errors import AttncoachError

    packed = _packed(runs["donor"], tmp_path / "ray-checkpoint")
    (packed / "optimizer.pt").write_bytes(b"broken")
    with pytest.raises(AttncoachError, match="checksum mismatch"):
        adopt_checkpoint(packed, runs["trial"], load_run_config(runs["trial"].config))


def test_a_trial_number_comes_from_the_ray_trial_id_and_pbt_keeps_perturbed_values_in_range():
    assert trial_number("5f3a2_00003") == 3
    space = tuple(parse_space({"train.lr": {"log_uniform": [1e-4, 1e-2]}, "model.layers": {"int": [1, 3]}}))
    plan = TrialPlan(config=None, overrides=(), space=space, out="/tmp", primary="macro_f1", clip=True)
    assert plan.clipped(space[0], 0.012) == 1e-2 and plan.clipped(space[1], 3.6) == 3
    assert TrialPlan(None, (), space, "/tmp", "macro_f1").clipped(space[0], 0.012) == 0.012
