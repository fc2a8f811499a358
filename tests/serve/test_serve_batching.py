"""Dynamic batching on a real event loop, with plain functions as the model."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from ltr.serve.batching import DynamicBatcher
from ltr.serve.errors import DeadlineExpiredError, QueueFullError, ShuttingDownError


class Recorder:
    """``process``: doubles each item and records the batches it saw (thread-safe)."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.gate = gate
        self.started = threading.Event()  # set when a batch reached process()

    def __call__(self, items: list[int]) -> list[int | Exception]:
        self.started.set()
        if self.gate is not None:
            self.gate.wait(10)
        self.batches.append(list(items))
        return [ValueError(f"bad {x}") if x < 0 else 2 * x for x in items]


def run(coro):
    return asyncio.run(coro)


def test_waiting_items_share_a_batch_and_each_caller_gets_its_own_result() -> None:
    async def main():
        rec = Recorder()
        b = DynamicBatcher(rec, max_batch_size=4, max_delay=0.2, size=lambda x: 1)
        b.start()
        results = await asyncio.gather(*(b.submit(i) for i in range(10)))
        await b.close()
        return rec, results

    rec, results = run(main())
    assert results == [2 * i for i in range(10)]
    # two full batches at once, then the last two after max_delay
    assert rec.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_a_lone_item_waits_at_most_max_delay() -> None:
    async def main():
        rec = Recorder()
        b = DynamicBatcher(rec, max_batch_size=8, max_delay=0.05, size=lambda x: 1)
        b.start()
        first = await b.submit(1)
        second = await asyncio.gather(b.submit(2), b.submit(3))
        await b.close()
        return rec, first, second

    rec, first, second = run(main())
    assert (first, second) == (2, [4, 6])
    assert rec.batches == [[1], [2, 3]]


def test_batching_off_computes_every_item_alone() -> None:
    async def main():
        rec = Recorder()
        b = DynamicBatcher(rec, max_batch_size=1, max_delay=0.0, size=lambda x: 1)
        b.start()
        await asyncio.gather(*(b.submit(i) for i in range(5)))
        await b.close()
        return rec

    assert run(main()).batches == [[0], [1], [2], [3], [4]]


def test_a_full_queue_refuses_at_once_and_queued_items_still_complete() -> None:
    gate = threading.Event()

    async def main():
        rec = Recorder(gate)
        b = DynamicBatcher(rec, max_batch_size=1, max_delay=0.0, queue_capacity=2, size=lambda x: 1)
        b.start()
        running = asyncio.ensure_future(b.submit(0))
        while not rec.started.is_set():
            await asyncio.sleep(0.01)  # until the worker holds item 0 (blocked on the gate)
        waiting = [asyncio.ensure_future(b.submit(i)) for i in (1, 2)]
        await asyncio.sleep(0.05)
        assert b.depth == 2
        with pytest.raises(QueueFullError, match=r"queue is full \(2 of 2 waiting\)"):
            await b.submit(3)
        with pytest.raises(QueueFullError):
            await b.submit_many([4])
        assert not any(w.done() for w in waiting)  # refused without waiting for them
        gate.set()
        done = await asyncio.gather(running, *waiting)
        await b.close()
        return done, rec

    done, rec = run(main())
    assert done == [0, 2, 4]
    assert rec.batches == [[0], [1], [2]]


def test_expired_and_cancelled_items_are_not_computed() -> None:
    gate = threading.Event()

    async def main():
        rec = Recorder(gate)
        b = DynamicBatcher(rec, max_batch_size=8, max_delay=0.0, size=lambda x: 1)
        b.start()
        blocker = asyncio.ensure_future(b.submit(0))
        while not rec.started.is_set():
            await asyncio.sleep(0.01)  # until the worker is blocked in process([0])
        expired = asyncio.ensure_future(b.submit(1, deadline=time.monotonic() + 0.01))
        gone = asyncio.ensure_future(b.submit(2))
        alive = asyncio.ensure_future(b.submit(3, deadline=time.monotonic() + 60))
        await asyncio.sleep(0.05)
        gone.cancel()
        await asyncio.sleep(0.02)  # the deadline of item 1 has passed
        gate.set()
        results = await asyncio.gather(blocker, expired, alive, return_exceptions=True)
        await b.close()
        return results, rec

    (blocked, expired, alive), rec = run(main())
    assert (blocked, alive) == (0, 6)
    assert isinstance(expired, DeadlineExpiredError)
    assert rec.batches == [[0], [3]]  # 1 expired and 2 was cancelled: neither computed


def test_padded_size_cap_splits_batches() -> None:
    async def main():
        rec = Recorder()
        b = DynamicBatcher(
            rec, max_batch_size=10, max_delay=0.1, max_batch_candidates=100, size=lambda x: x
        )
        b.start()
        # sizes 30, 30, 30 fit (3 x 30 = 90); a fourth 30 would pad to 120 slots
        out = await asyncio.gather(*(b.submit(30) for _ in range(4)), b.submit(60))
        await b.close()
        return rec, out

    rec, out = run(main())
    assert out == [60] * 4 + [120]
    # 3 x 30 = 90 slots fit; a fourth 30 would make 120, and [30, 60] pads to 2 x 60 = 120
    assert rec.batches == [[30, 30, 30], [30], [60]]


def test_errors_reach_only_their_callers_and_the_batcher_survives() -> None:
    def explode(items: list[int]) -> list[int]:
        if 99 in items:
            raise RuntimeError("forward pass failed")
        return [2 * x for x in items]

    async def main():
        rec = Recorder()
        b = DynamicBatcher(rec, max_batch_size=4, max_delay=0.01, size=lambda x: 1)
        b.start()
        mixed = await asyncio.gather(b.submit(1), b.submit(-1), return_exceptions=True)
        await b.close()
        c = DynamicBatcher(explode, max_batch_size=1, max_delay=0.0, size=lambda x: 1)
        c.start()
        failed = await asyncio.gather(c.submit(99), return_exceptions=True)
        after = await c.submit(5)
        await c.close()
        return mixed, failed, after

    mixed, failed, after = run(main())
    assert mixed[0] == 2 and isinstance(mixed[1], ValueError)
    assert isinstance(failed[0], RuntimeError) and after == 10


def test_submit_many_is_all_or_nothing_and_close_refuses_new_items() -> None:
    async def main():
        rec = Recorder()
        b = DynamicBatcher(rec, max_batch_size=8, max_delay=5.0, queue_capacity=3, size=lambda x: 1)
        b.start()
        with pytest.raises(QueueFullError):
            await b.submit_many([1, 2, 3, 4])
        assert b.depth == 0  # nothing was queued
        got = await asyncio.gather(b.submit_many([1, 2]), b.close())
        with pytest.raises(ShuttingDownError):
            await b.submit(1)
        return got[0]

    assert run(main()) == [2, 4]


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_compute_that_many_batches_at_once(workers) -> None:
    from concurrent.futures import ThreadPoolExecutor

    lock = threading.Lock()
    inside, most = [0], [0]

    def process(items: list[int]) -> list[int]:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.05)  # a forward pass that holds its thread, GIL released
        with lock:
            inside[0] -= 1
        return [2 * x for x in items]

    async def main():
        pool = ThreadPoolExecutor(2)  # threads to spare: only `workers` may limit
        b = DynamicBatcher(
            process,
            max_batch_size=1,
            max_delay=0.0,
            executor=pool,
            workers=workers,
            size=lambda x: 1,
        )
        b.start()
        started = time.perf_counter()
        results = await asyncio.gather(*(b.submit(i) for i in range(8)))
        seconds = time.perf_counter() - started
        await b.close()
        pool.shutdown()
        return results, seconds

    results, seconds = run(main())
    assert results == [2 * i for i in range(8)]
    assert most[0] == workers  # never more passes at once than workers, and that many
    assert seconds >= 8 * 0.05 / workers * 0.9
    with pytest.raises(Exception, match="workers >= 1"):
        DynamicBatcher(process, workers=0)
