"""Run settings: default run directories (unique, claimed atomically) and absolute paths in the saved config."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from attncoach.config import RunConfig
from attncoach.train.settings import absolute_paths, default_output_dir, release_output_dir


@pytest.fixture
def same_second(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "strftime", lambda fmt, *args: "20240102-030405")
    return tmp_path


def test_default_names_are_readable_and_unique_within_a_second(same_second):
    cfg = RunConfig()
    cfg.data.builtin = "banking77"
    first, second = default_output_dir(cfg), default_output_dir(cfg)
    assert first == "runs/banking77-20240102-030405" and second == "runs/banking77-20240102-030405-2"
    assert Path(first).is_dir() and Path(second).is_dir(), "each name is claimed as it is given"


def test_concurrent_claims_never_share_a_directory(same_second):
    with ThreadPoolExecutor(8) as pool:
        names = list(pool.map(lambda _: default_output_dir(RunConfig()), range(16)))
    assert len(set(names)) == 16 and all(Path(n).is_dir() for n in names)


def test_release_removes_only_an_empty_claimed_directory(same_second):
    kept, empty = default_output_dir(RunConfig()), default_output_dir(RunConfig())
    (Path(kept) / "config.yaml").write_text("{}")
    mine = same_second / "mine"
    mine.mkdir()
    for path in (kept, empty, mine):
        release_output_dir(path)
    assert Path(kept).is_dir() and not Path(empty).exists() and mine.is_dir()


def test_release_removes_runs_when_the_claim_created_it(same_second):
    release_output_dir(default_output_dir(RunConfig()))
    assert list(same_second.iterdir()) == []


def test_absolute_paths_resolve_against_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my-bert").mkdir()
    cfg = RunConfig(output_dir="runs/x")
    cfg.data.path = "../data/my.csv"
    cfg.model.backbone = "my-bert"
    absolute_paths(cfg)
    assert cfg.data.path == os.path.join(str(tmp_path.parent), "data", "my.csv")
    assert cfg.output_dir == str(tmp_path / "runs" / "x") and cfg.model.backbone == str(tmp_path / "my-bert")
    for name in ("scratch", "minilm", "owner/model"):  # not local directories: kept as written
        cfg.model.backbone = name
        absolute_paths(cfg)
        assert cfg.model.backbone == name


def test_adversarial_training_needs_a_task_with_an_embedding_table(monkeypatch):
    from attncoach.errors import AttncoachError
    from attncoach.tasks import TASKS
    from attncoach.train.settings import check_registries

    class NoTable(TASKS["text_classification"]):  # inputs that go through no embedding table
        embedded_inputs = False

    monkeypatch.setitem(TASKS, "no_table", NoTable)
    cfg = RunConfig(task="no_table")
    check_registries(cfg)  # robust.method none: nothing to refuse
    cfg.robust.method = "fgm"
    with pytest.raises(
        AttncoachError, match="'robust.method' fgm perturbs input embeddings, and task no_table has none"
    ):
        check_registries(cfg)
    for name in ("text_classification", "next_item"):
        check_registries(RunConfig(task=name, robust=cfg.robust))
