"""Data-parallel training under torchrun: the processes of a run, and what they exchange.

``torchrun --nproc_per_node N -m attncoach train --config FILE`` starts N processes; each
reads torchrun's environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), joins one process
group (gloo on CPU, nccl on CUDA, one GPU per ``LOCAL_RANK``) and runs the same recipe:

- every rank builds the same global batch (the data order is a pure function of
  ``(seed, epoch)``) and trains on its contiguous slice of it (:meth:`World.shard`), its
  loss weighted by its share of the batch, so that the summed gradients are the gradient of
  the whole batch's mean loss;
- one flattened all-reduce per optimizer step sums the gradients, the step's loss and which
  parameters got a gradient (:meth:`World.sum_gradients`): every rank clips, asks the coach
  and steps on identical numbers, so every rank holds identical weights;
- the coach's gradient noise scale: each rank measures the two halves of its slice, as one process
  measures its batch, and the ranks' means are shared (:meth:`World.all_sum`); the pair "one
  rank's gradient vs the summed one" would also do, but the halves keep the estimator and its
  batch sizes (b = B/2) what they are in one process;
- the per-example outcomes of each micro-batch are gathered (:meth:`World.gather_rows`) so
  the curriculum and the learning record of every rank see the whole batch;
- what only one process should compute (val metrics, difficulty scores) is computed on rank 0
  and broadcast (:meth:`World.from_main`), so every rank takes the same decisions;
- only rank 0 writes files and logs.

Why not ``torch.nn.parallel.DistributedDataParallel``: its reducer expects one backward
per forward over a fixed set of parameters, registered when the model is wrapped. A step
here can be several backward passes (supernet sandwich: each sub-net leaves parameters
unused; the coach's half-batch noise measurement; adversarial passes; gradient
accumulation), the coach's LR probe rolls weights and optimizer back, and
``train.freeze_after`` turns parameters off mid-run. Summing the gradients explicitly, once,
just before the optimizer step, is correct under all of them; it moves the gradients once per
step as DDP's bucketed all-reduce does (without DDP's overlap of communication and backward),
plus one small all-gather of per-example outcomes per micro-batch.

A plain ``attncoach train`` runs as :data:`SINGLE`: no process group, and every method below
returns at once.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch

from attncoach.errors import AttncoachError

log = logging.getLogger("attncoach")

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """The processes of one run: this one's rank, how many there are, and where collectives run.

    Attributes:
        rank: this process (0 writes the run's files).
        size: the number of processes.
        local_rank: this process on its machine (its GPU index under nccl).
        device: where the tensors of collectives live (``cpu`` for gloo, this rank's GPU for nccl).
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run's files, logs and progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    # ------------------------------------------------------------------ the data
    def shard_sizes(self, n: int) -> list[int]:
        """How many of a global batch of ``n`` examples each rank trains on (the first ranks one more).

        Example:
            >>> World(size=3).shard_sizes(7)
            [3, 2, 2]
        """
        return [n // self.size + (1 if r < n % self.size else 0) for r in range(self.size)]

    def shard(self, index: Sequence[int]) -> list[int]:
        """This rank's contiguous slice of a global batch; the slices of ranks 0, 1, ... concatenate to it.

        Example:
            >>> World(rank=1, size=2).shard([7, 3, 9, 4, 5])
            [4, 5]
        """
        sizes = self.shard_sizes(len(index))
        start = sum(sizes[: self.rank])
        return list(index[start : start + sizes[self.rank]])

    # ------------------------------------------------------------------ collectives
    @torch.no_grad()
    def sum_gradients(self, params: Sequence[torch.nn.Parameter], extras: Sequence[float] = ()) -> list[float]:
        """Sum the gradients of ``params`` and the numbers ``extras`` over the ranks, in one all-reduce.

        A parameter that no rank gave a gradient keeps ``grad = None`` (the optimizer leaves
        it alone, as in one process); one that some rank did not use (a sub-net without it,
        a rank with an empty slice) counts as zero there. Returns the summed ``extras``.
        """
        if not self.distributed:
            return list(extras)
        import torch.distributed as dist

        n = sum(p.numel() for p in params)
        flat = torch.zeros(n + len(params) + len(extras), device=self.device)  # grads | used flags | extras
        start = 0
        for p in params:
            if p.grad is not None:
                flat[start : start + p.numel()] = p.grad.reshape(-1)
            start += p.numel()
        used = [float(p.grad is not None) for p in params]
        flat[n:] = torch.tensor([*used, *extras], dtype=flat.dtype, device=self.device)
        dist.all_reduce(flat)
        start = 0
        for p, flag in zip(params, flat[n : n + len(params)].tolist()):
            piece = flat[start : start + p.numel()].view_as(p)
            start += p.numel()
            if flag == 0:
                p.grad = None
            elif p.grad is None:
                p.grad = piece.to(p.dtype).clone()
            else:
                p.grad.copy_(piece)
        return flat[n + len(params) :].tolist()

    def all_sum(self, values: Sequence[float]) -> list[float]:
        """``values`` summed over the ranks (a NaN anywhere is a NaN everywhere)."""
        if not self.distributed:
            return list(values)
        import torch.distributed as dist

        tensor = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def gather_rows(self, rows: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
        """Every rank's ``rows`` (shape ``(sizes[rank], k)``) stacked in rank order, on every rank."""
        if not self.distributed:
            return rows
        import torch.distributed as dist

        width, longest = rows.shape[1], max(sizes)
        padded = torch.zeros(max(longest, 1), width, dtype=torch.float64, device=self.device)
        padded[: len(rows)] = torch.as_tensor(rows, dtype=torch.float64)
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        dist.all_gather(parts, padded)
        return torch.cat([part[:n] for part, n in zip(parts, sizes)]).cpu().numpy()

    def gather_objects(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (picklable), in rank order, on every rank."""
        if not self.distributed:
            return [value]
        import torch.distributed as dist

        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, value)
        return out

    def from_main(self, compute: Callable[[], T]) -> T:
        """``compute()`` on rank 0, its result (picklable) handed to every rank.

        An error on rank 0 is raised on every rank: an :class:`AttncoachError` with its line,
        anything else as a RuntimeError naming it.
        """
        if not self.distributed:
            return compute()
        import torch.distributed as dist

        box: list[Any] = [None]
        failure: BaseException | None = None
        if self.is_main:
            try:
                box[0] = ("ok", compute())
            except Exception as exc:
                failure = exc
                box[0] = ("attncoach" if isinstance(exc, AttncoachError) else "failed", f"{exc}")
        dist.broadcast_object_list(box, src=0, device=self.device)
        if failure is not None:
            raise failure
        kind, value = box[0]
        if kind == "attncoach":
            raise AttncoachError(value)
        if kind == "failed":
            raise RuntimeError(f"rank 0 failed: {value}")
        return value

    @torch.no_grad()
    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers into every rank's ``module``."""
        if not self.distributed:
            return
        import torch.distributed as dist

        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.device == self.device:
                dist.broadcast(tensor.data, src=0)
            else:  # e.g. a CPU buffer of a model trained on a GPU: nccl moves device tensors only
                moved = tensor.data.to(self.device)
                dist.broadcast(moved, src=0)
                tensor.data.copy_(moved)


SINGLE = World()  # a plain run: one process, no process group


def world_size_from_env() -> int:
    """The ``WORLD_SIZE`` torchrun set (1 outside torchrun)."""
    return _env_int("WORLD_SIZE", 1)


def rank_from_env() -> int:
    """The ``RANK`` torchrun set (0 outside torchrun)."""
    return _env_int("RANK", 0)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise AttncoachError(f"environment variable {name} is {value!r}, not a whole number") from None


def check_batch_splits(batch_size: int, processes: int) -> None:
    """Refuse a ``train.batch_size`` that does not split evenly over the processes.

    Example:
        >>> check_batch_splits(32, 4)
    """
    if processes > 1 and batch_size % processes:
        raise AttncoachError(
            f"config key 'train.batch_size' ({batch_size}) does not split over {processes} processes "
            f"(torchrun --nproc_per_node {processes}): choose a multiple of {processes}"
        )


def current_world() -> World:
    """The :class:`World` of the process group this process joined, or :data:`SINGLE` when there is none."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return SINGLE
    local_rank = _env_int("LOCAL_RANK", 0)
    nccl = dist.get_backend() == "nccl"
    device = torch.device("cuda", local_rank) if nccl else torch.device("cpu")
    return World(dist.get_rank(), dist.get_world_size(), local_rank, device)


def rank_seed(seed: int, rank: int) -> int:
    """The torch seed of one rank of a data-parallel run: every rank draws its own dropout masks.

    Example:
        >>> rank_seed(0, 0) != rank_seed(0, 1)
        True
    """
    return int(np.random.SeedSequence([seed % 2**32, rank, 0xDD9]).generate_state(1)[0])


@contextlib.contextmanager
def data_parallel(device_name: str) -> Iterator[World]:
    """Join torchrun's process group for the block (gloo on CPU, nccl on CUDA), and leave it after.

    Outside torchrun (``WORLD_SIZE`` unset or 1) it yields :data:`SINGLE` and does nothing.
    Ranks other than 0 log only errors.

    Args:
        device_name: ``train.device`` (``auto`` means CUDA when there is one).
    """
    size = world_size_from_env()
    if size <= 1:
        yield SINGLE
        return
    import torch.distributed as dist

    if not dist.is_available():
        raise AttncoachError("this PyTorch build has no torch.distributed: data-parallel training needs one")
    rank, local_rank = rank_from_env(), _env_int("LOCAL_RANK", 0)
    cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    if cuda:
        if not torch.cuda.is_available():
            raise AttncoachError("train.device is cuda but no CUDA device is available")
        if local_rank >= torch.cuda.device_count():
            raise AttncoachError(
                f"LOCAL_RANK {local_rank} has no GPU: this machine has {torch.cuda.device_count()}; "
                "start at most that many processes per node"
            )
        torch.cuda.set_device(local_rank)
    backend = "nccl" if cuda else "gloo"
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    try:
        dist.init_process_group(backend, rank=rank, world_size=size)
    except (RuntimeError, ValueError) as exc:  # e.g. WORLD_SIZE set by hand, without torchrun's MASTER_ADDR
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AttncoachError(
            f"cannot join the process group of {size} processes ({first}); start data-parallel runs with torchrun"
        ) from None
    if rank != 0:
        log.setLevel(logging.ERROR)
    world = World(rank, size, local_rank, device)
    if world.is_main:
        log.info("data-parallel: %d processes, %s", size, backend)
    try:
        yield world
    except BaseException:
        dist.destroy_process_group()  # no barrier: a rank that failed may leave the others inside a collective
        raise
    # every rank leaves together, none with work in flight: a rank that tore gloo down while another still
    # finished its run was seen to abort ("terminate called without an active exception"). Bounded: a rank
    # that failed alone has left the group, and the others must not wait for it the group's 30 minutes.
    try:
        if backend == "gloo":
            dist.monitored_barrier(timeout=datetime.timedelta(minutes=10))
        else:
            dist.barrier(device_ids=[local_rank])
    except RuntimeError as exc:
        log.warning("data-parallel: the ranks did not all finish together (%s)", str(exc).splitlines()[0])
    dist.destroy_process_group()
