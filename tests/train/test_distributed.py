"""Data-parallel helpers (train/distributed.py): slices of a batch, the batch rule, collectives between two
gloo processes, and a recipe whose two ranks end with identical weights and state."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from attncoach.errors import AttncoachError
from attncoach.train.distributed import SINGLE, World, check_batch_splits, data_parallel, rank_seed
from ranks import collectives, spawn, train_scenarios
from tinydata import tiny_overrides, write_corpus


@pytest.mark.parametrize("n, size", [(16, 2), (7, 3), (1, 2), (0, 2), (5, 1)])
def test_slices_of_the_ranks_concatenate_to_the_batch(n, size):
    index = list(np.random.default_rng(n).permutation(100)[:n])
    slices = [World(rank=r, size=size).shard(index) for r in range(size)]
    assert sum(slices, []) == index
    assert [len(s) for s in slices] == World(size=size).shard_sizes(n)
    assert max(map(len, slices)) - min(map(len, slices)) <= 1


def test_a_batch_that_does_not_split_over_the_processes_is_refused():
    check_batch_splits(32, 4)
    check_batch_splits(15, 1)  # one process takes any batch
    with pytest.raises(AttncoachError, match=r"'train.batch_size' \(15\) does not split over 2 processes"):
        check_batch_splits(15, 2)


def test_one_process_changes_nothing(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with data_parallel("cpu") as world:
        assert world is SINGLE and world.is_main and not world.distributed
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.ones(2)
    assert SINGLE.sum_gradients([p], [0.5]) == [0.5] and p.grad.tolist() == [1.0, 1.0]
    rows = np.ones((3, 2))
    assert SINGLE.gather_rows(rows, [3]) is rows
    assert SINGLE.from_main(lambda: 7) == 7 and SINGLE.all_sum([1.0]) == [1.0]
    assert SINGLE.shard([4, 5, 6]) == [4, 5, 6]
    assert rank_seed(3, 0) != rank_seed(3, 1) and rank_seed(3, 1) == rank_seed(3, 1)


def test_collectives_between_two_gloo_processes(tmp_path):
    spawn(collectives, tmp_path)  # every check asserts inside the ranks


# what each 2-rank run turns on besides the coach (LR probe and rollback) and the learning record, and the
# micro-batches per optimizer step it starts with
SCENARIOS = {
    "supernet": (["elastic.enabled=true", "model.layers=2"], 1),  # several backward passes per step
    "noise-leitner": (  # batch growth has the gradient noise measured; Leitner boxes move by the outcomes
        [
            "coach.policies=[lr_probe, {batch_growth: {threshold: 0.001, cooldown: 5, max_accumulation: 2}}]",
            "coach.noise_every=1",
            "curriculum.scheduler=leitner",
        ],
        2,
    ),
    "self_paced": (["curriculum.scheduler=self_paced"], 1),  # rounds chosen by losses rank 0 measures
}


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    """One spawn of two gloo ranks that trains every scenario, then a run through ``attncoach.train``."""
    tmp = tmp_path_factory.mktemp("ranks")
    data = write_corpus(tmp / "tiny.csv")
    quick = ["log.report=false", "log.tensorboard=false", "train.calibrate=false"]
    runs = {}
    for name, (pillars, accumulation) in SCENARIOS.items():
        overrides = [
            *[o for o in tiny_overrides(data, tmp / name, 20) if not o.startswith("train.eval_every")],
            "train.eval_every=10",
            "data.val_fraction=0.105",  # 191 training examples in batches of 10: the epoch has a batch of 1,
            "train.batch_size=10",  # so rank 1 has an empty slice of it
            "coach.enabled=true",
            *quick,
            *pillars,
        ]
        runs[name] = (overrides, accumulation)
    api = [*tiny_overrides(data, tmp / "runs" / "api", 10), *quick]
    spawn(train_scenarios, tmp, runs, api)
    return tmp


@pytest.mark.parametrize("name", SCENARIOS)
def test_two_ranks_of_a_coached_run_end_identical(two_ranks, name):
    """A batch of 10 over two ranks and a batch of 1 (rank 1's slice is empty): both ranks end with the same
    weights, optimizer, coach and curriculum."""
    pillars, accumulation = SCENARIOS[name]
    first, second = (json.loads((two_ranks / f"{name}-rank{r}.json").read_text()) for r in (0, 1))
    assert first["metrics_keys"] and not second["metrics_keys"], "only rank 0 finishes the run"
    first.pop("metrics_keys"), second.pop("metrics_keys")
    assert first == second
    assert len(first["record"]["seen"]) == 191
    if name != "self_paced":  # its first round holds the easiest examples only
        assert first["state"]["examples_seen"] == 191  # one epoch
    probed = 3 * accumulation * 10  # the LR probe's 3 optimizer steps are rolled back, and not recorded
    assert sum(first["record"]["seen"]) == first["state"]["examples_seen"] - probed
    measured = first["coach"]["tracker"]["trace_ema"] is not None  # the noise scale (never under a supernet)
    assert measured == ("coach.noise_every=1" in pillars)
    assert (two_ranks / name / "metrics.json").is_file() and (two_ranks / name / "scalars.jsonl").is_file()


def test_the_python_api_trains_one_run_under_a_process_group(two_ranks):
    (first_dir, first_keys), (second_dir, second_keys) = (
        json.loads((two_ranks / f"api-rank{r}.json").read_text()) for r in (0, 1)
    )
    assert first_dir == second_dir == str(two_ranks / "runs" / "api"), "rank 0 claims the run directory for both"
    assert "test" in first_keys and second_keys == []
    assert [p.name for p in (two_ranks / "runs").iterdir()] == ["api"]


def test_world_size_without_torchrun_s_rendezvous_is_one_line(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    for name in ("MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(AttncoachError, match="cannot join the process group of 2 processes"):
        with data_parallel("cpu"):
            pass
