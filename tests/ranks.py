"""Two gloo processes on one machine, for the data-parallel tests (``torch.multiprocessing.spawn``).

The workers live here, in a module the spawned processes import by name; each joins a process
group through a file store in the test's temporary directory (no port to choose).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from attncoach.errors import AttncoachError
from attncoach.train.distributed import current_world


def spawn(worker: Callable[..., None], tmp: Path, *args: Any, processes: int = 2) -> None:
    """Run ``worker(tmp, *args)`` in ``processes`` gloo ranks; a failing rank fails the caller."""
    torch.multiprocessing.spawn(_join, args=(processes, worker, tmp, args), nprocs=processes)


def _join(rank: int, size: int, worker: Callable[..., None], tmp: Path, args: tuple) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp / 'store'}", rank=rank, world_size=size)
    try:
        worker(tmp, *args)
    finally:
        dist.destroy_process_group()


def collectives(tmp: Path) -> None:
    """The helpers of ``attncoach.train.distributed`` between two ranks; every check asserts here."""
    world = current_world()
    rank = world.rank
    # gradients: `both` used everywhere, `first` only on rank 0, `none` nowhere; plus one extra number
    both, first, none = (torch.nn.Parameter(torch.zeros(2)) for _ in range(3))
    both.grad = torch.tensor([1.0, 2.0]) * (rank + 1)
    if rank == 0:
        first.grad = torch.tensor([5.0, 6.0])
    extras = world.sum_gradients([both, first, none], [0.25 * (rank + 1)])
    assert both.grad.tolist() == [3.0, 6.0]
    assert first.grad is not None and first.grad.tolist() == [5.0, 6.0]
    assert none.grad is None
    assert extras == [0.75]
    # the ranks' share-weighted slices sum to the gradient of the whole batch's mean loss
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    x, y = torch.randn(5, 3), torch.tensor([0, 1, 1, 0, 1])
    loss_of = lambda rows: torch.nn.functional.cross_entropy(layer(x[rows]), y[rows])  # noqa: E731
    loss_of(list(range(5))).backward()
    whole = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad(set_to_none=True)
    mine = world.shard(list(range(5)))
    (loss_of(mine) * len(mine) / 5).backward()
    world.sum_gradients(list(layer.parameters()))
    for p, expected in zip(layer.parameters(), whole):
        assert torch.allclose(p.grad, expected, atol=1e-6)
    # rows of uneven slices, in rank order
    sizes = world.shard_sizes(5)  # [3, 2]
    rows = np.arange(sizes[rank] * 2, dtype=np.float64).reshape(-1, 2) + 100 * rank
    gathered = world.gather_rows(rows, sizes)
    assert gathered[:, 0].tolist() == [0.0, 2.0, 4.0, 100.0, 102.0]
    assert world.gather_rows(np.zeros((0, 2)) if rank else np.ones((1, 2)), [1, 0]).tolist() == [[1.0, 1.0]]
    assert world.all_sum([1.0, float(rank)]) == [2.0, 1.0]
    # rank 0 computes, every rank gets the result or rank 0's error line
    assert world.from_main(lambda: {"rank": rank}) == {"rank": 0}
    try:
        world.from_main(lambda: (_ for _ in ()).throw(AttncoachError("bad input on rank 0")))
    except AttncoachError as exc:
        assert str(exc) == "bad input on rank 0"
    else:
        raise AssertionError("from_main did not raise")
    module = torch.nn.Linear(2, 2)
    with torch.no_grad():
        module.weight.fill_(float(rank))
    world.broadcast_module(module)
    assert module.weight.abs().sum().item() == 0.0
    assert world.gather_objects(rank) == [0, 1]


def train_tiny_run(tmp: Path, overrides: list[str], accumulation: int = 1) -> None:
    """Train one run with the recipe on both ranks; each writes a digest of its weights and state after the
    last step (rank 0 then finishes the run: its model becomes the best one kept).

    ``accumulation`` > 1 starts the coach's knob there (micro-batches per optimizer step).
    """
    from attncoach.rundir import RunDir
    from attncoach.train.recipe import Recipe
    from attncoach.train.settings import load_run_config

    cfg = load_run_config(None, overrides)
    recipe = Recipe(cfg, RunDir(cfg.output_dir), quiet=True)
    recipe.setup()
    recipe.coach.knobs.accumulation = accumulation
    recipe.train()
    digest = hashlib.sha256()
    for name, tensor in sorted(recipe.model.state_dict().items()):
        digest.update(name.encode() + tensor.detach().cpu().numpy().tobytes())
    optimizer = recipe.optimizer.state_dict()["state"]
    moments = sum(float(v["exp_avg_sq"].sum()) for v in optimizer.values() if "exp_avg_sq" in v)
    record = recipe.record.state_dict() if recipe.record is not None else None
    seen = {
        "weights": digest.hexdigest(),
        "moments": moments,
        "state": {k: v for k, v in vars(recipe.state).items() if not k.endswith("seconds") and k != "history"},
        "record": record,
        "scheduler": recipe.scheduler.state_dict(),
        "coach": recipe.coach.state_dict() if hasattr(recipe.coach, "state_dict") else None,
    }
    seen["metrics_keys"] = sorted(recipe.finish()) if recipe.world.is_main else []
    recipe.close()
    name = Path(cfg.output_dir).name
    (tmp / f"{name}-rank{current_world().rank}.json").write_text(json.dumps(seen, sort_keys=True))


def train_through_the_api(tmp: Path, overrides: list[str]) -> None:
    """``attncoach.train(cfg)`` on both ranks; each writes the run directory it got and its metrics' keys."""
    import attncoach
    from attncoach.train.settings import load_run_config

    run = attncoach.train(load_run_config(None, overrides))
    (tmp / f"api-rank{current_world().rank}.json").write_text(json.dumps([str(run.dir), sorted(run.metrics)]))


def train_scenarios(tmp: Path, runs: dict[str, tuple[list[str], int]], api: list[str]) -> None:
    """:func:`train_tiny_run` for each ``(overrides, accumulation)`` of ``runs``, then
    :func:`train_through_the_api` with ``api``: one process group for all (spawning costs seconds)."""
    for overrides, accumulation in runs.values():
        train_tiny_run(tmp, overrides, accumulation)
    train_through_the_api(tmp, api)
