"""`attncoach tune --backend ray` end to end on tiny runs: trials on a local Ray and on a `ray start --head` cluster
on loopback, a killed tune resumed, PBT exploiting a better trial's checkpoint, and bad input."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml

from attncoach.cli import main
from clicheck import digest, refused
from rayhead import free_port, ray_env, ray_head
from tinydata import tiny_overrides, write_corpus

ray = pytest.importorskip("ray", reason="Ray Tune is not installed: pip install 'attncoach[ray]'")
pytest.importorskip("ray.tune", reason="Ray Tune is not installed: pip install 'attncoach[ray]'")

SPACE = "tune.space={train.lr: {log_uniform: [1.0e-3, 2.0e-2]}, model.dim: {choice: [16, 32]}}"


def _overrides(data: Path, steps: int = 30) -> list[str]:
    """A tiny run's overrides without its output_dir: each trial has its own."""
    return [o for o in tiny_overrides(data, Path("unused"), steps) if not o.startswith("output_dir=")]


@pytest.fixture
def data(tmp_path) -> Path:
    return write_corpus(tmp_path / "tiny.csv")


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    """The environment of this module's Ray subprocesses: a throwaway token, workers that import this attncoach."""
    return ray_env()


def _tune_process(env: dict[str, str], *argv: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "attncoach", "tune", "--quiet", "--backend", "ray", *argv],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _check_trials(out: Path, result: dict, trials: int) -> None:
    assert result["metric"] == "val macro_f1" and result["backend"] == "ray" and len(result["trials"]) == trials
    for row in result["trials"]:
        run = Path(row["run_dir"])
        assert run == out.resolve() / f"trial-{row['number']:04d}" and (run / "config.yaml").is_file()
        config = yaml.safe_load((run / "config.yaml").read_text())
        for key, value in row["params"].items():  # the run trained the trial's values (PBT: its last explored ones)
            section, name = key.split(".")
            assert config[section][name] == pytest.approx(value)
        if row["state"] == "complete":
            assert (run / "metrics.json").is_file() and row["val_macro_f1"] is not None
    best = result["best"]
    assert best["value"] == max(r["val_macro_f1"] for r in result["trials"] if r["state"] == "complete")
    best_config = yaml.safe_load((out / "best.yaml").read_text())
    assert "output_dir" not in best_config and best_config["train"]["lr"] == best["params"]["train.lr"]
    assert (out / "ray").is_dir()  # Ray's own experiment lives under --out


def test_two_trials_on_a_ray_cluster_started_with_ray_start_head(env, data, tmp_path):
    out = tmp_path / "study"
    with ray_head(env) as address:
        tune = _tune_process(env, "--address", address, "--trials", "2", "--out", str(out), *_overrides(data), SPACE)
        stdout, stderr = tune.communicate(timeout=300)
    assert tune.returncode == 0, stderr[-3000:]
    result = json.loads((out / "tune.json").read_text())
    assert result["address"] == address and result["scheduler"] == "asha"
    _check_trials(out, result, 2)
    assert f"best: trial {result['best']['number']}" in stdout


@pytest.fixture(scope="module")
def local_ray(env):
    """One local Ray for the in-process tune calls of this module (tune joins a Ray that is running): private to
    this process, so without a token (none is written to ~/.ray); its workers import this attncoach."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_MODE", "disabled")
        patch.setenv("PYTHONPATH", env["PYTHONPATH"])
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        yield
        ray.shutdown()


@pytest.mark.slow  # about a minute on 2 cores: a Ray of its own in a process, killed, then the trials resumed
def test_a_killed_tune_resumes_its_trials_from_their_checkpoints(env, local_ray, data, tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["--trials", "2", "--out", str(out), *_overrides(data, 100), SPACE, "tune.scheduler=fifo"]
    first = _tune_process(env, *argv)
    deadline = time.monotonic() + 240
    while not glob.glob(str(out / "ray" / "*" / "checkpoint_*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    first.send_signal(signal.SIGINT)  # Ctrl-C: Ray saves the experiment and stops its trials
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 2 and "run the same command again" in stderr.strip().splitlines()[-1], stderr[-3000:]
    interrupted = json.loads((out / "tune.json").read_text())["trials"]
    reported = {row["number"]: row["steps"] for row in interrupted if row["state"] == "running"}  # with a checkpoint
    assert reported
    assert main(["tune", "--quiet", "--backend", "ray", *argv]) == 0
    printed = capsys.readouterr().out
    assert "resuming Ray Tune experiment" in printed
    result = json.loads((out / "tune.json").read_text())
    assert result["counts"]["complete"] == 2
    _check_trials(out, result, 2)
    for number, step in reported.items():  # a trial goes on from a checkpoint Ray registered, not from step 0
        steps = [
            int(line.split()[3][:-1]) for line in printed.splitlines() if line.startswith(f"trial {number}: step ")
        ]
        assert steps and 10 < steps[0] <= step + 10, steps[:3]
    # another number of trials is another experiment
    refused(capsys, ["tune", "--backend", "ray", *argv[2:], "--trials", "3"], "holds a Ray experiment of 2 trials")


@pytest.mark.slow  # half a minute on 2 cores
def test_a_trial_whose_process_dies_runs_again_from_its_checkpoint(local_ray, data, tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["tune", "--quiet", "--backend", "ray", "--trials", "1", "--out", str(out), *_overrides(data, 100)]
    argv += ["tune.space={train.lr: {choice: [5.0e-3]}}", "tune.scheduler=fifo", "tune.retries=1"]
    killed = []

    def kill_the_trial_after_its_first_report() -> None:
        deadline = time.monotonic() + 240
        while not killed and time.monotonic() < deadline:
            for path in glob.glob(str(out / "ray" / "*" / "result.json")):
                first = Path(path).read_text().splitlines()[:1]
                if first:
                    os.kill(json.loads(first[0])["pid"], signal.SIGKILL)  # the trial's Ray worker
                    killed.append(path)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_trial_after_its_first_report)
    killer.start()
    assert main(argv) == 0
    killer.join()
    printed = capsys.readouterr().out.splitlines()
    assert killed and "trial 0 failed: it runs again, from its last checkpoint if it has one" in printed
    after = printed[printed.index("trial 0 failed: it runs again, from its last checkpoint if it has one") + 1 :]
    steps = [int(line.split()[3][:-1]) for line in after if line.startswith("trial 0: step ")]
    assert steps and steps[0] > 10  # not from step 0
    result = json.loads((out / "tune.json").read_text())
    assert result["counts"]["complete"] == 1 and result["trials"][0]["steps"] == 100


def test_pbt_exploits_a_better_trials_checkpoint_with_its_coach_state(local_ray, data, tmp_path, capsys):
    out = tmp_path / "pbt"
    argv = ["tune", "--quiet", "--backend", "ray", "--trials", "2", "--out", str(out), *_overrides(data, 120)]
    # seed 2 draws lr 1e-5 for one member (it learns nothing) and 1e-2 for the other: the first is always the worse,
    # whichever order their evaluations arrive in. The coach keeps policies that leave the LR alone: its LR probe
    # could lift 1e-5 to the other's LR, and its plateau policy end the flat member before it is ranked
    argv += ["coach.enabled=true", "coach.policies=[divergence_guard, regularisation]", "train.seed=2"]
    argv += ["tune.space={train.lr: {choice: [1.0e-5, 1.0e-2]}}"]
    argv += ["tune.scheduler=pbt", "tune.perturbation_interval=1"]
    assert main([*argv, "--retrain-best", "--retrain-seeds", "3"]) == 0
    result = json.loads((out / "tune.json").read_text())
    assert result["scheduler"] == "pbt" and result["counts"]["complete"] == 2
    _check_trials(out, result, 2)
    assert f"best: trial {result['best']['number']}" in capsys.readouterr().out
    exploits = [
        (row, json.loads(line))
        for row in result["trials"]
        if row.get("exploits")
        for line in (Path(row["run_dir"]) / "exploits.jsonl").read_text().splitlines()
    ]
    # asynchronous PBT ranks a member at each evaluation (every 10 steps; the last, at 120, is not reported) against
    # the other's latest score: the worse continues from the better one's checkpoint, coach state included
    assert exploits
    for row, record in exploits:
        donor = Path(record["donor"])
        assert donor != Path(row["run_dir"]) and donor.parent == out.resolve() and record["coach_state"] == "donor"
        assert record["step"] % 10 == 0 and 10 <= record["step"] < 120
    # --retrain-best trained the best configuration again at the config's length
    retrained = result["retrained"]
    assert retrained["runs"][0]["seed"] == 3 and (out / "best-seed-3" / "metrics.json").is_file()


def test_a_pbt_member_that_ends_between_intervals_never_holds_the_others(local_ray, tmp_path):
    """The coach may end a member between two perturbation intervals while the others already wait there: under
    synchronous PBT Ray rechecked that barrier only on a new result, so the others stayed paused for good."""
    from ray import tune

    from attncoach.train.settings import load_run_config
    from attncoach.tune.ray_backend import _scheduler
    from attncoach.tune.space import parse_space

    def member(config: dict) -> None:
        """Reports evaluations with a checkpoint each; member 0 ends after its first, slowly."""
        start = 0
        if (restored := tune.get_checkpoint()) is not None:
            with restored.as_directory() as d:
                start = json.loads((Path(d) / "state.json").read_text())["evaluation"]
        for evaluation in range(start + 1, 2 if config["member"] == 0 else 7):
            with tempfile.TemporaryDirectory() as d:
                (Path(d) / "state.json").write_text(json.dumps({"evaluation": evaluation}))
                score = config["train.lr"] * evaluation
                tune.report(
                    {"evaluation": evaluation, "val_macro_f1": score}, checkpoint=tune.Checkpoint.from_directory(d)
                )
            if config["member"] == 0:
                time.sleep(5)  # the others reach evaluation 2 meanwhile

    space = parse_space({"train.lr": {"log_uniform": [1.0e-3, 1.0e-2]}})
    base = load_run_config(None, ["tune.scheduler=pbt", "tune.perturbation_interval=2"])
    tuner = tune.Tuner(
        tune.with_resources(member, {"cpu": 1}),
        param_space={"member": tune.grid_search([0, 1, 2]), "train.lr": tune.loguniform(1.0e-3, 1.0e-2)},
        tune_config=tune.TuneConfig(scheduler=_scheduler(tune, base, space, "macro_f1", "pbt"), time_budget_s=120),
        run_config=tune.RunConfig(name="pbt", storage_path=str(tmp_path), verbose=0),
    )
    results = tuner.fit()
    assert not results.errors  # an exploit copies the donor's config, "member" too: count evaluations instead
    assert sorted(r.metrics["evaluation"] for r in results) == [1, 6, 6]


def test_bad_input_is_one_line_and_writes_nothing(data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "study"
    base = ["tune", "--trials", "2", "--out", str(out), *_overrides(data), SPACE]
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    refused(capsys, [*base, "--backend", "ray", "--address", address], f"the Ray cluster at {address} does not answer")
    refused(capsys, [*base, "--backend", "ray", "tune.scheduler=pbt"], "PBT cannot perturb model.dim")
    refused(capsys, [*base, "--backend", "ray", "tune.pbt_coach_state=false"], "is for tune.scheduler pbt")
    refused(capsys, [*base, "--backend", "ray", "tune.scheduler=hyperband"], "tune.scheduler", "asha, pbt, fifo")
    two = ["tune.objective=metric_latency", "tune.pruner=none"]
    refused(capsys, [*base, "--backend", "ray", *two], "tune.objective metric_latency", "runs on --backend optuna")
    refused(capsys, [*base, "--backend", "ray", "tune.sampler=random"], "tune.sampler random is Optuna's")
    refused(capsys, [*base, "--backend", "ray", "--storage", "memory"], "--storage is Optuna's")
    refused(capsys, [*base, "--address", address], "--address is Ray's")
    refused(capsys, [*base, "tune.scheduler=asha"], "tune.scheduler is for --backend ray")
    with pytest.raises(SystemExit) as exit_:  # argparse: an unknown backend
        main([*base, "--backend", "hyperopt"])
    assert exit_.value.code == 2 and "invalid choice: 'hyperopt'" in capsys.readouterr().err
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a))
    refused(capsys, [*base, "--backend", "ray"], "pip install 'attncoach[ray]'", one_line=True)
    assert not out.exists()


def test_an_optuna_study_is_not_taken_for_a_ray_experiment(data, tmp_path, capsys):
    pytest.importorskip("optuna")
    out = tmp_path / "study"
    argv = ["tune", "--quiet", "--trials", "1", "--out", str(out), *_overrides(data, 10), SPACE]
    assert main([*argv, "--storage", "memory"]) == 0  # no study.db: only tune_config.json says whose it is
    before = digest(out)
    refused(capsys, [*argv, "--backend", "ray"], "holds an Optuna study")
    assert digest(out) == before
