"""`attncoach tune` end to end on tiny runs: trials, pruning, the table and best.yaml, resuming, sharing a study,
retrying a killed trial from its checkpoint, and bad input."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from attncoach.cli import main
from clicheck import digest, refused
from tinydata import tiny_overrides, write_corpus

pytest.importorskip("optuna")

SPACE = "tune.space={train.lr: {log_uniform: [1.0e-3, 2.0e-2]}, model.dim: {choice: [16, 32]}}"


def _overrides(data: Path, steps: int = 30) -> list[str]:
    """A tiny run's overrides without its output_dir: each trial has its own."""
    return [o for o in tiny_overrides(data, Path("unused"), steps) if not o.startswith("output_dir=")]


@pytest.fixture
def data(tmp_path) -> Path:
    return write_corpus(tmp_path / "tiny.csv")


def test_tune_runs_trials_prints_the_table_and_writes_the_best_config(data, tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["tune", "--quiet", "--trials", "3", "--out", str(out), *_overrides(data), SPACE, "tune.startup_trials=1"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "tune.json").read_text())
    assert result["metric"] == "val macro_f1" and result["study"] == "study"
    assert result["counts"]["complete"] + result["counts"]["pruned"] == 3
    assert result["space"] == {"train.lr": "log_uniform [0.001, 0.02]", "model.dim": "choice {16, 32}"}
    for row in result["trials"]:
        run = Path(row["run_dir"])
        assert run == out / f"trial-{row['number']:04d}" and (run / "metrics.json").is_file()
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert (
            config["train"]["lr"] == row["params"]["train.lr"] and config["model"]["dim"] == row["params"]["model.dim"]
        )
        assert 1e-3 <= row["params"]["train.lr"] <= 2e-2 and row["val_macro_f1"] is not None
    best = result["best"]
    assert best["value"] == max(r["val_macro_f1"] for r in result["trials"] if r["state"] == "complete")
    assert f"best: trial {best['number']}, val macro_f1 {best['value']:.4f}" in printed and "study study" in printed
    best_config = yaml.safe_load((out / "best.yaml").read_text())
    assert "output_dir" not in best_config and best_config["train"]["lr"] == best["params"]["train.lr"]
    # best.yaml is a training config as it stands
    assert main(["train", "--quiet", "--config", str(out / "best.yaml"), f"output_dir={tmp_path / 'again'}"]) == 0


LATENCY = ["tune.objective=metric_latency", "tune.pruner=none", "tune.sampler=nsga2", "tune.startup_trials=2"]


def test_two_objectives_give_a_pareto_front_of_val_metric_and_sub_net_latency(data, tmp_path, capsys):
    from attncoach.elastic.measure import pareto_front

    out = tmp_path / "study"
    space = "tune.space={model.layers: {choice: [1, 3]}, model.dim: {choice: [16, 64]}}"
    subnet = "tune.latency_subnet={width: 0.5}"
    argv = ["tune", "--quiet", "--trials", "3", "--out", str(out), *_overrides(data), space, *LATENCY, subnet]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "tune.json").read_text())
    assert result["objectives"] == ["val macro_f1", "latency_ms"]
    assert result["latency"] == {"subnet": {"width": 0.5}, "batch": 1, "max_ms": None}
    trials = result["trials"]
    assert [t["state"] for t in trials] == ["complete"] * 3 and all(t["latency_ms"] > 0 for t in trials)
    # the front Optuna keeps is the front of the measured (val metric, latency) pairs
    assert [t["pareto"] for t in trials] == pareto_front(trials, quality="val_macro_f1", costs=("latency_ms",))
    assert result["best"]["value"] == max(t["val_macro_f1"] for t in trials)
    assert "Pareto" in printed and "ms at batch 1 (minimised) of sub-net width 0.5" in printed
    # the val metric is the half-width sub-net's: the whole model's is in the run's metrics.json
    whole = [json.loads((Path(t["run_dir"]) / "metrics.json").read_text())["val"]["macro_f1"] for t in trials]
    assert any(abs(w - t["val_macro_f1"]) > 1e-9 for w, t in zip(whole, trials))
    # a latency budget below every trial's: one line, and the front stays in tune.json
    budget = "tune.max_latency_ms=0.0001"
    refused(capsys, [*argv, budget], "is within tune.max_latency_ms", one_line=True)


def test_a_trial_below_the_median_is_pruned_and_says_so_in_its_run(data, tmp_path):
    out = tmp_path / "study"
    # a learning rate that learns nothing next to one that learns: the random sampler (seed 0) draws both
    space = "tune.space={train.lr: {choice: [1.0e-2, 1.0e-7]}}"
    argv = ["tune", "--quiet", "--trials", "4", "--out", str(out), *_overrides(data, 60), space]
    assert main([*argv, "tune.sampler=random", "tune.startup_trials=1", "tune.warmup_evaluations=1"]) == 0
    trials = json.loads((out / "tune.json").read_text())["trials"]
    pruned = [t for t in trials if t["state"] == "pruned"]
    assert pruned and all(t["params"]["train.lr"] == 1e-7 for t in pruned)
    for row in pruned:
        metrics = json.loads((Path(row["run_dir"]) / "metrics.json").read_text())
        assert metrics["stop_reason"].startswith("pruned by the tuner") and metrics["steps"] < 60


def test_the_same_command_resumes_the_study_and_leaves_finished_trials_alone(data, tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["tune", "--quiet", "--out", str(out), *_overrides(data), SPACE, "tune.pruner=none"]
    assert main([*argv, "--trials", "2"]) == 0
    before = digest(out / "trial-0000") | {f"1/{k}": v for k, v in digest(out / "trial-0001").items()}
    assert main([*argv, "--trials", "2"]) == 0
    assert "already holds 2 finished trials" in capsys.readouterr().out
    assert main([*argv, "--trials", "3"]) == 0
    after = digest(out / "trial-0000") | {f"1/{k}": v for k, v in digest(out / "trial-0001").items()}
    assert after == before and (out / "trial-0002" / "metrics.json").is_file()
    assert len(json.loads((out / "tune.json").read_text())["trials"]) == 3
    # another config in the same --out is refused, naming what changed
    refused(
        capsys, [*argv, "--trials", "4", "train.batch_size=8"], "holds a study of another config", "train.batch_size"
    )


def _tune_process(data: Path, out: Path, storage: str, trials: int, steps: int, *extra: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    argv = [sys.executable, "-m", "attncoach", "tune", "--quiet", "--trials", str(trials), "--out", str(out)]
    argv += ["--storage", storage, "--study", "shared", *_overrides(data, steps), SPACE, "tune.pruner=none", *extra]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_processes_share_one_study(data, tmp_path):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    out = tmp_path / "study"
    workers = [_tune_process(data, out, storage, 4, 30) for _ in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
    trials = json.loads((out / "tune.json").read_text())["trials"]
    finished = [t for t in trials if t["state"] == "complete"]
    assert len(finished) >= 4 and len({t["run_dir"] for t in finished}) == len(finished)  # no run directory shared
    assert all((Path(t["run_dir"]) / "metrics.json").is_file() for t in finished)


def test_two_processes_share_one_study_on_a_postgresql_server(data, tmp_path):
    pytest.importorskip("psycopg")
    from pgserver import postgres_server, server_binaries

    if server_binaries() is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
    out = tmp_path / "study"
    with postgres_server() as url:
        workers = [_tune_process(data, out, url, 3, 30) for _ in range(2)]
        for worker in workers:
            _, err = worker.communicate(timeout=300)
            assert worker.returncode == 0, err
        result = json.loads((out / "tune.json").read_text())
        assert result["storage"] == url  # no password to hide here
        finished = [t for t in result["trials"] if t["state"] == "complete"]
        assert len(finished) >= 3 and len({t["run_dir"] for t in finished}) == len(finished)
        # the study is in the server: a third process finds it finished and runs nothing
        third = _tune_process(data, out, url, 3, 30)
        stdout, err = third.communicate(timeout=120)
        assert third.returncode == 0 and "already holds" in stdout, err


def test_a_postgresql_server_that_does_not_answer_is_one_line_with_the_url_but_not_the_password(data, tmp_path, capsys):
    pytest.importorskip("psycopg")
    with socket.socket() as sock:  # a loopback port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://tuner:s3cret@127.0.0.1:{port}/studies"
    out = tmp_path / "study"
    argv = ["tune", "--quiet", "--trials", "2", "--out", str(out), "--storage", url, *_overrides(data), SPACE]
    last = refused(capsys, argv, f"cannot open the study storage postgresql://tuner:***@127.0.0.1:{port}/studies")
    assert "s3cret" not in last and not out.exists()


def _wait_for_a_checkpoint(process: subprocess.Popen, run: Path) -> None:
    """Until the trial's run has written a checkpoint (the process still running)."""
    deadline = time.monotonic() + 120
    while not ((run / "checkpoints").is_dir() and list((run / "checkpoints").glob("step-*"))):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.2)


def test_a_killed_trial_is_retried_from_its_checkpoint_when_the_tune_runs_again(data, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    out = tmp_path / "study"
    extra = ["tune.grace_seconds=2", "train.checkpoint_every=20", "train.eval_every=200"]
    first = _tune_process(data, out, storage, 1, 800, *extra)
    _wait_for_a_checkpoint(first, out / "trial-0000")
    first.send_signal(signal.SIGKILL)
    first.wait()
    time.sleep(3)  # its heartbeat goes stale
    again = _tune_process(data, out, storage, 1, 800, *extra)
    stdout, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert "trial 1 (trial 0 again, resumed)" in stdout
    trials = {t["number"]: t for t in json.loads((out / "tune.json").read_text())["trials"]}
    assert trials[0]["state"] == "fail" and trials[1]["state"] == "complete"
    assert trials[1]["run_dir"] == str(out / "trial-0000") and not (out / "trial-0001").exists()
    metrics = json.loads((out / "trial-0000" / "metrics.json").read_text())
    assert metrics["steps"] == 800


def test_an_interrupted_tune_resumes_its_trial_from_the_checkpoint(data, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    out = tmp_path / "study"
    extra = ["train.checkpoint_every=20", "train.eval_every=200"]
    first = _tune_process(data, out, storage, 1, 800, *extra)
    _wait_for_a_checkpoint(first, out / "trial-0000")
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 143 and err.strip().splitlines()[-1] == "terminated", err
    again = _tune_process(data, out, storage, 1, 800, *extra)
    stdout, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert "trial 0 was interrupted" in stdout and "trial 1 (trial 0 again, resumed)" in stdout
    trials = {t["number"]: t for t in json.loads((out / "tune.json").read_text())["trials"]}
    assert trials[0]["state"] == "fail" and trials[1]["state"] == "complete"
    assert json.loads((out / "trial-0000" / "metrics.json").read_text())["steps"] == 800


def test_retrain_best_trains_the_best_configuration_again_per_seed(data, tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["tune", "--quiet", "--trials", "2", "--out", str(out), *_overrides(data), SPACE, "tune.trial_steps=10"]
    assert main([*argv, "--retrain-best", "--retrain-seeds", "3", "4"]) == 0
    result = json.loads((out / "tune.json").read_text())
    assert all(t["steps"] == 10 for t in result["trials"])
    runs = result["retrained"]["runs"]
    assert [r["seed"] for r in runs] == [3, 4]
    for r in runs:
        metrics = json.loads((Path(r["run_dir"]) / "metrics.json").read_text())
        assert metrics["steps"] == 30 and metrics["test"]["macro_f1"] == r["test_macro_f1"]  # full length, not 10
    assert "best configuration retrained: median test macro_f1" in capsys.readouterr().out


def test_a_space_where_every_run_fails_stops_and_says_why(data, tmp_path, capsys, monkeypatch):
    from attncoach.errors import AttncoachError
    from attncoach.train.recipe import Recipe

    def diverge(self):
        raise AttncoachError("training diverged: the val loss was NaN")

    monkeypatch.setattr(Recipe, "run", diverge)
    out = tmp_path / "study"
    argv = ["tune", "--quiet", "--trials", "2", "--out", str(out), *_overrides(data), SPACE]
    last = refused(capsys, argv, "no trial of study study completed (3 ran; the first error: training diverged")
    assert "tune.json" in last
    trials = json.loads((out / "tune.json").read_text())["trials"]
    assert [t["state"] for t in trials] == ["fail"] * 3 and trials[0]["error"].startswith("training diverged")


@pytest.mark.parametrize(
    "extra, words",
    [
        ([], "no search space"),
        (["tune.space={train.lr: [1, 2]}"], "tune.space['train.lr'] must be one of"),
        (["tune.space={train.lrr: {uniform: [0.001, 0.01]}}"], "unknown config key 'train.lrr'"),
        (["tune.space={model.layers: {int: [0, 2]}}"], "model.layers"),
        ([SPACE, "tune.sampler=genetic"], "tune.sampler"),
        (
            [SPACE, "--storage", "sqlite:////nonexistent/dir/study.db"],
            "cannot open the study storage sqlite:////nonexistent",
        ),
        ([SPACE, "--trials", "0"], "--trials must be at least 1"),
        ([SPACE, "output_dir=x"], "drop the output_dir override"),
        ([SPACE, "--retrain-seeds", "1"], "--retrain-seeds goes with --retrain-best"),
        ([SPACE, "tune.objective=metric_latency"], "'tune.pruner' must be none with tune.objective: metric_latency"),
        ([SPACE, *LATENCY[:2], "tune.sampler=cmaes"], "cmaes searches one objective"),
        ([SPACE, "tune.latency_batch=4"], "latency_batch"),
        ([SPACE, "tune.max_latency_ms=5"], "'tune.max_latency_ms' applies only with tune.objective: metric_latency"),
        ([SPACE, *LATENCY, "tune.latency_subnet={width: 1.5}"], "'tune.latency_subnet.width' must be a fraction"),
        ([SPACE, *LATENCY, "tune.latency_subnet={heads: 0.5}"], "'tune.latency_subnet' must be a mapping of width"),
    ],
)
def test_bad_input_is_one_line_and_leaves_no_study(data, tmp_path, capsys, extra, words):
    out = tmp_path / "study"
    trials = [] if "--trials" in extra else ["--trials", "2"]
    refused(capsys, ["tune", "--quiet", *trials, "--out", str(out), *_overrides(data), *extra], words)
    assert not out.exists()


def test_without_optuna_tune_says_what_to_install(data, tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "optuna" else real(name, *a))
    argv = ["tune", "--quiet", "--trials", "2", "--out", str(tmp_path / "s"), *_overrides(data), SPACE]
    refused(capsys, argv, "needs optuna: pip install 'attncoach[tune]'", one_line=True)
    assert not (tmp_path / "s").exists()


def test_an_unknown_backend_is_refused_with_the_choices(data, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["tune", "--trials", "2", "--backend", "hyperopt", "--out", str(tmp_path / "s"), SPACE])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "invalid choice: 'hyperopt'" in err and "optuna" in err
