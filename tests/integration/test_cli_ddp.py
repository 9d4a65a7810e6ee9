"""`torchrun --nproc_per_node 2 -m attncoach train` (as `python -m torch.distributed.run`, gloo on CPU):
one run written by rank 0, a resume that repeats the uninterrupted run exactly, a batch that does not split,
and a resume on another number of processes refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import attncoach
from attncoach.cli import main
from clicheck import refused
from tinydata import rewind_to_first_checkpoint, tiny_overrides, without_times

SRC = Path(attncoach.__file__).resolve().parents[1]


def torchrun(*args: str, processes: int = 2) -> subprocess.CompletedProcess:
    """``attncoach ARGS`` in ``processes`` gloo ranks on this machine."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}", "--standalone"]
    return subprocess.run(
        [*command, "-m", "attncoach", *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory) -> tuple[Path, str]:
    """A finished 2-process run of the coached tiny config (LR probe, rollback) with the learning record."""
    from tinydata import write_corpus

    tmp = tmp_path_factory.mktemp("ddp")
    data, out = write_corpus(tmp / "tiny.csv"), tmp / "run"
    proc = torchrun(
        "train", *tiny_overrides(data, out, 20), "coach.enabled=true", "log.report=false", "log.tensorboard=false"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stderr


def test_rank_0_alone_writes_a_complete_run(two_process_run):
    out, err = two_process_run
    assert "data-parallel: 2 processes, gloo" in err
    assert err.count("run directory:") == 1, "the other rank logs nothing"
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    for name in ("config.yaml", "metrics.json", "model/model.safetensors", "examples.jsonl", "coach.jsonl"):
        assert name in files
    assert not [f for f in files if ".tmp" in f], files
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 20 and metrics["examples_seen"] == 20 * 16  # the global batch of 16
    rows = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    decisions = [json.loads(line) for line in (out / "coach.jsonl").read_text().splitlines()]
    undone = sum(d["old"] - d["new"] for d in decisions if d["knob"] == "rollback")  # the LR probe's steps
    assert undone > 0
    assert sum(r["seen"] for r in rows) == metrics["examples_seen"] - undone * 16, "both ranks' examples are recorded"
    assert 0 <= metrics["test"]["macro_f1"] <= 1


def test_the_kept_model_gives_the_run_s_test_metrics(two_process_run, capsys):
    out, _ = two_process_run
    assert main(["eval", str(out), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    reported = json.loads((out / "metrics.json").read_text())["test"]
    assert evaluated["macro_f1"] == pytest.approx(reported["macro_f1"], abs=1e-6)
    assert evaluated["accuracy"] == pytest.approx(reported["accuracy"], abs=1e-6)


def test_a_resumed_two_process_run_repeats_the_uninterrupted_one(two_process_run, tmp_path, capsys):
    finished, _ = two_process_run
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    rewind_to_first_checkpoint(out)
    refused(capsys, ["train", "--resume", str(out)], "written by 2 process(es)", "--nproc_per_node 2")
    proc = torchrun("train", "--quiet", "--resume", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed, reference = (without_times(json.loads((d / "metrics.json").read_text())) for d in (out, finished))
    assert resumed == reference
    for name in ("examples.jsonl", "coach.jsonl"):
        assert (out / name).read_text() == (finished / name).read_text(), name


def test_a_batch_that_does_not_split_over_the_processes_is_refused(tiny_csv, tmp_path, capsys, monkeypatch):
    """What every rank of `torchrun --nproc_per_node 2` does first: one line, exit 2, before anything is written."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    out = tmp_path / "run"
    line = refused(capsys, ["train", *tiny_overrides(tiny_csv, out, 10), "train.batch_size=15"], one_line=True)
    assert line == (
        "error: config key 'train.batch_size' (15) does not split over 2 processes (torchrun --nproc_per_node 2): "
        "choose a multiple of 2"
    )
    assert not out.exists()


def test_one_process_outside_torchrun_is_a_plain_run(tiny_csv, tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    out = tmp_path / "run"
    assert main(["train", "--quiet", *tiny_overrides(tiny_csv, out, 10), "train.batch_size=15"]) == 0
    rng = torch.load(next((out / "checkpoints").glob("step-*")) / "rng.pt", weights_only=True)
    assert set(rng) == {"torch"}, "no process group, no ranks"
