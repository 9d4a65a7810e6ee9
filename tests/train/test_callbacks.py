"""The recipe's callbacks: which plug in, what a checkpoint keeps of them, and the uncoached protocol."""

from __future__ import annotations

import json

from attncoach.rundir import RunDir
from attncoach.train.calibrate import CalibrationCallback
from attncoach.train.callbacks import Callback, CoachCallback, CurriculumCallback, ElasticCallback, Uncoached
from attncoach.train.history import ScalarHistory
from attncoach.train.loggers import LoggerCallback, TensorBoardLogger
from attncoach.train.recipe import Recipe
from attncoach.train.settings import load_run_config
from tinydata import tiny_overrides


def _recipe(tiny_csv, tmp_path, *extra: str) -> Recipe:
    cfg = load_run_config(None, [*tiny_overrides(tiny_csv, tmp_path / "run", 20), *extra])
    recipe = Recipe(cfg, RunDir(cfg.output_dir), quiet=True)
    recipe.setup()
    return recipe


def test_a_plain_run_has_the_curriculum_only_and_an_uncoached_protocol(tiny_csv, tmp_path):
    recipe = _recipe(tiny_csv, tmp_path)
    assert [type(cb) for cb in recipe.callbacks] == [
        CurriculumCallback,
        CalibrationCallback,
        ScalarHistory,
        LoggerCallback,
    ]
    assert [type(b) for b in recipe.loggers.backends] == [TensorBoardLogger]
    assert isinstance(recipe.coach, Uncoached)
    coach = recipe.coach
    assert coach.knobs.accumulation == 1 and coach.knobs.lr_scale == 1.0 and not coach.probing
    assert coach.before_update(1, 16, 0.5, 1.0, 16, 1.0) == "step" and not coach.wants_noise(0)
    with coach.step_context(1, 0.5):
        pass


def test_every_pillar_plugs_in_and_its_state_reaches_the_checkpoint(tiny_csv, tmp_path):
    recipe = _recipe(tiny_csv, tmp_path, "coach.enabled=true", "elastic.enabled=true")
    assert [type(cb) for cb in recipe.callbacks] == [
        ElasticCallback,
        CurriculumCallback,
        CoachCallback,
        CalibrationCallback,
        ScalarHistory,
        LoggerCallback,
    ]
    recipe.train()
    metrics = recipe.finish()
    recipe.close()
    assert {"elastic", "curriculum", "coach", "calibration"} <= set(metrics)
    assert metrics["curriculum"]["record"]["never_seen"] >= 0
    latest = json.loads((tmp_path / "run" / "checkpoints" / "latest.json").read_text())["latest"]
    state = json.loads((tmp_path / "run" / "checkpoints" / latest / "state.json").read_text())
    assert {"trainer", "config", "curriculum", "coach", "history"} <= set(state) and "elastic" not in state
    assert "calibration" not in state  # fitted at the end: a resumed run has nothing to restore


def test_a_callback_sees_every_learned_batch_and_can_stop_the_run(tiny_csv, tmp_path):
    class Counting(Callback):
        key = "counting"

        def __init__(self):
            self.batches = self.evals = 0

        def on_batch_end(self, recipe, index, out):
            self.batches += 1
            assert out is not None and len(out.losses) == len(index)

        def after_eval(self, recipe, metrics, score):
            self.evals += 1
            return "enough" if self.evals == 1 else None

        def state_dict(self):
            return {"batches": self.batches}

        def finish(self, recipe):
            return {"batches": self.batches}

    recipe = _recipe(tiny_csv, tmp_path)
    counting = Counting()
    recipe.callbacks.append(counting)
    recipe.train()
    metrics = recipe.finish()
    recipe.close()
    assert recipe.state.stop_reason == "enough" and recipe.state.step == 10  # the first evaluation is at step 10
    assert metrics["counting"] == {"batches": 10}


def test_a_callback_is_handed_each_checkpoint_once_it_is_complete(tiny_csv, tmp_path):
    class Handed(Callback):
        def __init__(self):
            self.seen = []

        def on_checkpoint(self, recipe, path):
            pointer = json.loads((path.parent / "latest.json").read_text())
            assert pointer["latest"] == path.name and (path / "manifest.json").is_file()  # written and pointed at
            self.seen.append((recipe.state.step, path.name))

    recipe = _recipe(tiny_csv, tmp_path)  # 20 steps, a checkpoint at each evaluation (every 10 steps)
    handed = Handed()
    recipe.callbacks.append(handed)
    recipe.train()
    recipe.close()
    assert handed.seen == [(10, "step-00000010"), (20, "step-00000020")]


def test_the_loggers_are_callbacks_that_see_every_group_and_are_closed(tiny_csv, tmp_path):
    class Recording(Callback):
        def __init__(self):
            self.groups, self.closed = {}, False

        def on_log(self, recipe, step, group, values):
            self.groups.setdefault(group, set()).update(values)

        def on_finish(self, recipe, metrics):
            self.finished = metrics

        def close(self):
            self.closed = True

    recipe = _recipe(tiny_csv, tmp_path, "coach.enabled=true", "log.tensorboard=true", "log.every=1")
    assert recipe.callbacks[-1] is recipe.loggers  # the loggers come last: they see what the others log
    recording = Recording()
    recipe.callbacks.append(recording)
    recipe.train()
    metrics = recipe.finish()
    recipe.close()
    assert recording.closed and recording.finished == metrics
    assert {"loss", "lr", "lr_scale", "accumulation", "dropout", "weight_decay", "update_ratio"} <= recording.groups[
        "train"
    ] and "loss" in recording.groups["val"]
    assert "macro_f1" in recording.groups["test"] and "lr_scale" in recording.groups["coach"]  # the LR probe's choice
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))  # TensorBoard wrote its file


def test_a_run_without_tensorboard_has_no_logger(tiny_csv, tmp_path):
    recipe = _recipe(tiny_csv, tmp_path, "log.tensorboard=false")
    assert recipe.loggers is None and not any(isinstance(cb, LoggerCallback) for cb in recipe.callbacks)
