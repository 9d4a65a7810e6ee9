"""Micro-batching: concurrent jobs gathered into one run, each answered with its own result."""

from __future__ import annotations

import asyncio
import threading

import pytest

from attncoach.serve.batching import MicroBatcher, QueueFull, Stopped


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_concurrent_jobs_share_a_batch_and_get_their_own_results():
    runs: list[list[str]] = []

    def upper(payloads):
        runs.append(list(payloads))
        return [p.upper() if p != "bad" else ValueError("bad payload") for p in payloads]

    async def scenario():
        batcher = MicroBatcher(upper, max_batch=8, max_wait_ms=50)
        batcher.start()
        jobs = [asyncio.ensure_future(batcher.submit(p)) for p in ("a", "bad", "c")]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        await batcher.stop()
        return results

    results = _run(scenario())
    assert results[0] == "A" and results[2] == "C"
    assert isinstance(results[1], ValueError)
    assert runs == [["a", "bad", "c"]]


def test_batches_hold_at_most_max_batch_rows():
    runs: list[list[int]] = []

    def record(payloads):
        runs.append(list(payloads))
        return payloads

    async def scenario():
        batcher = MicroBatcher(record, max_batch=4, max_wait_ms=20)
        batcher.start()
        sizes = [3, 2, 2, 5, 1]  # a job of 5 rows runs alone
        results = await asyncio.gather(*(batcher.submit(i, rows=n) for i, n in enumerate(sizes)))
        await batcher.stop()
        return results

    assert _run(scenario()) == [0, 1, 2, 3, 4]
    assert runs == [[0], [1, 2], [3], [4]]


def test_a_full_queue_refuses_and_stop_answers_what_is_queued():
    release = threading.Event()

    def slow(payloads):
        release.wait(30)
        return payloads

    async def scenario():
        batcher = MicroBatcher(slow, max_batch=1, max_wait_ms=0, queue_size=2)
        batcher.start()
        running = asyncio.ensure_future(batcher.submit("running"))
        await asyncio.sleep(0)  # queued
        while batcher.depth:  # until the worker has taken it (and waits in slow)
            await asyncio.sleep(0.01)
        queued = [asyncio.ensure_future(batcher.submit(p)) for p in ("q1", "q2")]
        await asyncio.sleep(0)
        with pytest.raises(QueueFull):
            await batcher.submit("refused")
        stopping = asyncio.ensure_future(batcher.stop())
        await asyncio.sleep(0)
        with pytest.raises(Stopped):
            await batcher.submit("late")
        release.set()
        await stopping
        return [await running, *[await q for q in queued]]

    assert _run(scenario()) == ["running", "q1", "q2"]


def test_run_batch_failing_as_a_whole_fails_each_job():
    def broken(payloads):
        raise RuntimeError("model on fire")

    async def scenario():
        batcher = MicroBatcher(broken, max_batch=4, max_wait_ms=10)
        batcher.start()
        results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
        await batcher.stop()
        return results

    results = _run(scenario())
    assert [str(r) for r in results] == ["model on fire", "model on fire"]
