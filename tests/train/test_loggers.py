"""The tracker backends: one contract over every registered one, the choice in the config, failures."""

from __future__ import annotations

import logging
import math
import sys

import numpy as np
import pytest

from attncoach.config import LogConfig, RunConfig
from attncoach.errors import AttncoachError
from attncoach.rundir import RunDir
from attncoach.train.loggers import (
    LOGGERS,
    Logger,
    LoggerCallback,
    check_installed,
    chosen_backends,
    flat_params,
    make_loggers,
)
from attncoach.train.settings import load_run_config
from trackers import READERS


def test_every_registered_backend_has_a_reader_in_the_tests():
    assert set(READERS) == set(LOGGERS)


@pytest.mark.parametrize("name", sorted(LOGGERS))
def test_every_backend_writes_scalars_summary_and_images_that_its_library_reads_back(name, tmp_path):
    run = RunDir(tmp_path / "run")
    run.create()
    backend = LOGGERS[name](run, LogConfig())
    backend.log_scalars(5, {"train/loss": 0.75, "train/lr": 1e-3})
    backend.log_scalars(10, {"train/loss": 0.5, "val/macro_f1": 0.625})
    params = {"train.lr": 0.001, "model.layers": 2, "data.tokenizer": "wordpiece", "coach.enabled": False}
    backend.log_summary(params, {"test/macro_f1": 0.6875, "steps": 10.0})
    backend.log_image("figures/square", np.full((8, 6, 3), 200, dtype=np.uint8), 10)
    backend.close()

    written = READERS[name](run)
    assert written["scalars"]["train/loss"] == [(5, 0.75), (10, 0.5)]
    assert [s for s, _ in written["scalars"]["train/lr"]] == [5] and math.isclose(
        written["scalars"]["train/lr"][0][1], 1e-3, rel_tol=1e-6
    )
    assert written["scalars"]["val/macro_f1"] == [(10, 0.625)]
    assert written["summary"] == {"test/macro_f1": 0.6875, "steps": 10.0}
    assert {k: _shown(v) for k, v in written["params"].items()} == {k: _shown(v) for k, v in params.items()}
    assert written["images"] == ["figures/square"]


def _shown(value):
    """A param as every tracker gives it back: a number (TensorBoard keeps no int, MLflow only text) or text."""
    if isinstance(value, bool):
        return str(value)
    try:
        return float(value)
    except ValueError:
        return str(value)


def test_the_backends_are_chosen_by_log_backends_and_the_older_tensorboard_key():
    assert chosen_backends(LogConfig()) == ["tensorboard"]  # an old config: TensorBoard, as before
    assert chosen_backends(LogConfig(tensorboard=False)) == []
    assert chosen_backends(LogConfig(backends=["mlflow", "wandb"])) == ["mlflow", "wandb"]
    assert chosen_backends(LogConfig(backends=["wandb"], tensorboard=False)) == ["wandb"]
    assert chosen_backends(LogConfig(backends=[])) == []
    with pytest.raises(AttncoachError, match="log.tensorboard' is false but log.backends lists tensorboard"):
        chosen_backends(LogConfig(backends=["tensorboard"], tensorboard=False))


def test_an_old_config_without_the_backends_key_loads(tmp_path):
    old = tmp_path / "config.yaml"
    old.write_text("log:\n  tensorboard: false\n  every: 5\n", encoding="utf-8")
    cfg = load_run_config(old)
    assert cfg.log.backends is None and chosen_backends(cfg.log) == []


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("[tensorboard, comet]", "must list some of tensorboard, wandb, mlflow, got 'comet'"),
        ("[wandb, wandb]", "lists wandb twice"),
        ("wandb", "must be a list"),
    ],
)
def test_a_bad_backend_list_is_refused_naming_the_choices(value, words):
    with pytest.raises(AttncoachError, match="log.backends") as error:
        load_run_config(None, [f"log.backends={value}"])
    assert words in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("name", ["wandb", "mlflow"])
def test_a_missing_library_is_refused_with_the_extra_to_install(name, monkeypatch):
    monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed
    with pytest.raises(AttncoachError) as error:
        check_installed(LogConfig(backends=["tensorboard", name]))
    assert str(error.value) == f"log.backends: {name} needs the {name} package: pip install 'attncoach[{name}]'"


class _Recording(Logger):
    name = "recording"

    def __init__(self, fail: bool = False):
        self.fail, self.scalars, self.closed = fail, [], False

    def log_scalars(self, step, values):
        if self.fail:
            raise OSError("No space left on device")
        self.scalars.append((step, values))

    def log_summary(self, params, metrics):
        pass

    def log_image(self, tag, image, step):
        pass

    def close(self):
        self.closed = True


def test_a_failing_backend_is_dropped_with_one_warning_and_the_others_go_on(caplog):
    broken, working = _Recording(fail=True), _Recording()
    fanout = LoggerCallback([broken, working])
    with caplog.at_level(logging.WARNING, logger="attncoach"):
        fanout.on_log(None, 1, "train", {"loss": 1.0})
        fanout.on_log(None, 2, "val", {"loss": 0.5})
    assert [r.getMessage() for r in caplog.records] == [
        "logger recording failed (No space left on device): it is dropped, training goes on"
    ]
    assert broken.closed and fanout.backends == [working]
    assert working.scalars == [(1, {"train/loss": 1.0}), (2, {"val/loss": 0.5})]
    fanout.close()
    assert working.closed


def test_only_the_main_process_logs(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create()
    assert make_loggers(LogConfig(), run, is_main=False) is None
    assert make_loggers(LogConfig(tensorboard=False), run) is None
    fanout = make_loggers(LogConfig(), run)
    assert [b.name for b in fanout.backends] == ["tensorboard"]
    fanout.close()


def test_the_config_is_flattened_to_params_every_tracker_takes():
    params = flat_params(RunConfig())
    assert params["train.lr"] == "null" and params["train.betas"] == "[0.9, 0.98]"  # null and lists as JSON
    assert params["model.layers"] == RunConfig().model.layers and params["log.backends"] == "null"
    assert all(isinstance(v, (bool, int, float, str)) for v in params.values())
