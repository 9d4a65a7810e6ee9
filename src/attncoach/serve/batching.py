"""Micro-batching: concurrent requests gathered into one model run, answered each with its own rows.

A :class:`MicroBatcher` holds a bounded queue of jobs (a request's payload and its number of
rows). One worker task takes the oldest job, then gathers more until the batch holds
``max_batch`` rows or ``max_wait_ms`` have passed since the first, and hands the payloads to
``run_batch`` in its one inference thread, so the event loop keeps accepting requests while the
model runs. ``run_batch`` returns one result per payload, an exception instance for a payload
that failed; each request gets its own. A full queue refuses a job at once (:class:`QueueFull`),
and :meth:`MicroBatcher.stop` answers every queued job before the worker ends.

Example:
    >>> async def demo():
    ...     batcher = MicroBatcher(lambda texts: [t.upper() for t in texts], max_batch=8, max_wait_ms=2)
    ...     batcher.start()
    ...     answers = await asyncio.gather(batcher.submit("a"), batcher.submit("b"))
    ...     await batcher.stop()
    ...     return answers, batcher.batches
    >>> asyncio.run(demo())  # both requests in one run
    (['A', 'B'], 1)
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


class QueueFull(Exception):
    """The queue holds as many jobs as it may; the caller should retry later."""


class Stopped(Exception):
    """The batcher is stopping (the server shuts down) and takes no new jobs."""


@dataclass
class _Job:
    payload: Any
    rows: int
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Gathers jobs into batches of at most ``max_batch`` rows and runs them in one thread.

    Args:
        run_batch: called in the inference thread with the payloads of one batch; returns one
            result per payload (an ``Exception`` instance for one that failed).
        max_batch: rows per batch; a single job of more rows runs alone.
        max_wait_ms: how long the first job of a batch waits for others (0: take only what is queued).
        queue_size: jobs that may wait; one more is refused with :class:`QueueFull`.
        on_batch: called in the inference thread with the rows of each batch (e.g. for metrics).
        on_depth: called in the event loop with the queue's depth each time it changes.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Any]], Sequence[Any]],
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        queue_size: int = 256,
        on_batch: Callable[[int], None] | None = None,
        on_depth: Callable[[int], None] | None = None,
    ) -> None:
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_ms = max_wait_ms
        self.queue_size = queue_size
        self.on_batch = on_batch
        self.on_depth = on_depth
        self.batches = 0  # batches run so far
        self._queue: collections.deque[_Job] = collections.deque()
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._stopping = False

    @property
    def depth(self) -> int:
        """Jobs waiting in the queue (not counting the batch being run)."""
        return len(self._queue)

    def start(self) -> None:
        """Start the worker task and the inference thread (call from the running event loop)."""
        self._arrived = asyncio.Event()
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="attncoach-infer")
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="attncoach-batcher")

    async def submit(self, payload: Any, rows: int = 1) -> Any:
        """Queue ``payload`` (``rows`` rows) and wait for its result.

        Raises:
            QueueFull: the queue is full.
            Stopped: the batcher is stopping or was not started.
            Exception: the exception ``run_batch`` gave for this payload.
        """
        if self._stopping or self._worker is None:
            raise Stopped("the server is shutting down")
        if len(self._queue) >= self.queue_size:
            raise QueueFull(f"the queue is full ({self.queue_size} requests waiting)")
        job = _Job(payload, rows, asyncio.get_running_loop().create_future())
        self._queue.append(job)
        self._depth_changed()
        self._arrived.set()
        result = await job.future
        if isinstance(result, BaseException):
            raise result
        return result

    async def stop(self) -> None:
        """Take no new jobs, answer every queued one, then end the worker and the inference thread."""
        self._stopping = True
        if self._worker is not None:
            self._arrived.set()
            await self._worker
            self._worker = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._gather(loop)
            if jobs is None:  # stopping, and nothing is left
                return
            jobs = [job for job in jobs if not job.future.done()]  # a client that went away cancelled its own
            if not jobs:
                continue
            payloads = [job.payload for job in jobs]
            rows = sum(job.rows for job in jobs)
            try:
                results = await loop.run_in_executor(self._executor, self._run, payloads, rows)
            except Exception as exc:  # run_batch failed as a whole: every job gets its error
                results = [exc] * len(jobs)
            self.batches += 1
            for job, result in zip(jobs, results):
                if not job.future.done():
                    job.future.set_result(result)

    def _depth_changed(self) -> None:
        if self.on_depth is not None:
            self.on_depth(len(self._queue))

    def _run(self, payloads: list[Any], rows: int) -> Sequence[Any]:
        if self.on_batch is not None:
            self.on_batch(rows)
        results = self.run_batch(payloads)
        if len(results) != len(payloads):
            raise RuntimeError(f"run_batch gave {len(results)} results for {len(payloads)} payloads")
        return results

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> list[_Job] | None:
        """The next batch: the oldest job, then more until ``max_batch`` rows or ``max_wait_ms``;
        None when stopping with nothing queued."""
        while not self._queue:
            if self._stopping:
                return None
            self._arrived.clear()
            await self._arrived.wait()
        jobs = [self._queue.popleft()]
        rows = jobs[0].rows
        deadline = loop.time() + self.max_wait_ms / 1000
        while rows < self.max_batch:
            if self._queue:
                if rows + self._queue[0].rows > self.max_batch:
                    break  # the next job starts the next batch
                jobs.append(self._queue.popleft())
                rows += jobs[-1].rows
                continue
            remaining = deadline - loop.time()
            if remaining <= 0 or self._stopping:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                break
        self._depth_changed()
        return jobs
