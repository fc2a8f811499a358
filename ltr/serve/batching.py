"""Dynamic batching: requests arriving within a short window share one forward pass.

A :class:`DynamicBatcher` keeps a bounded FIFO of waiting items. A worker task forms a batch
when ``max_batch_size`` items wait or the oldest has waited ``max_delay`` seconds, whichever comes
first, and runs ``process(items)`` on an executor thread (the model releases the GIL, so the event
loop keeps accepting calls meanwhile). With ``workers`` above 1 as many batches are computed at
once, each worker taking the next batch from the one queue as soon as its own is done (the
executor needs that many threads). Rules:

* the queue is bounded: a submit that would exceed ``queue_capacity`` raises
  :class:`~ltr.serve.errors.QueueFullError` at once instead of waiting;
* items whose deadline has passed when their batch is formed are failed with
  :class:`~ltr.serve.errors.DeadlineExpiredError` and never computed; items whose caller went
  away (cancelled futures) are dropped;
* a batch also stops growing when padding it to its longest list would exceed
  ``max_batch_candidates`` slots (``batch size x longest list``);
* ``max_batch_size=1`` turns batching off: every item gets its own forward pass.

Nothing here knows about gRPC or models: ``process`` maps a list of items to one result (or
exception) per item, in order.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from ltr.errors import ConfigError
from ltr.serve.errors import DeadlineExpiredError, QueueFullError, ShuttingDownError

T = TypeVar("T")
R = TypeVar("R")


class BatchObserver(Protocol):
    """Receives batching statistics (the server forwards them to Prometheus)."""

    def queue_depth(self, depth: int) -> None: ...

    def batch_formed(self, items: int, candidates: int) -> None: ...


class _NoObserver:
    def queue_depth(self, depth: int) -> None:
        pass

    def batch_formed(self, items: int, candidates: int) -> None:
        pass


@dataclass(eq=False)
class _Waiting(Generic[T, R]):
    item: T
    size: int
    deadline: float | None
    enqueued: float
    future: asyncio.Future[R]


class DynamicBatcher(Generic[T, R]):
    """Collect items into batches for ``process``.

    Args:
        process: ``items -> results`` (one result or exception per item), run on ``executor``.
        max_batch_size: most items per batch (1 = no batching).
        max_delay: seconds the oldest waiting item may wait for others to join its batch.
        queue_capacity: most items waiting (not yet in a batch); more are refused at once.
        max_batch_candidates: most padded slots per batch (``items x longest``); None = no cap.
        size: the number of candidates of an item (for ``max_batch_candidates``).
        executor: where ``process`` runs (None = the loop's default executor); it needs
            ``workers`` threads for that many batches to compute at once.
        workers: batches computed at once.
        observer: receives queue depth and batch sizes.
        clock: monotonic clock in seconds (deadlines use the same clock).
    """

    def __init__(
        self,
        process: Callable[[list[T]], Sequence[R | BaseException]],
        *,
        max_batch_size: int = 32,
        max_delay: float = 0.002,
        queue_capacity: int = 512,
        max_batch_candidates: int | None = None,
        size: Callable[[T], int] = len,  # type: ignore[assignment]
        executor: Executor | None = None,
        workers: int = 1,
        observer: BatchObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_batch_size < 1 or queue_capacity < 1 or max_delay < 0 or workers < 1:
            raise ConfigError(
                "batching needs max_batch_size >= 1, queue_capacity >= 1, workers >= 1 and "
                "max_delay >= 0"
            )
        self.process = process
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay
        self.queue_capacity = queue_capacity
        self.max_batch_candidates = max_batch_candidates
        self.size = size
        self.executor = executor
        self.workers = workers
        self.observer: BatchObserver = observer or _NoObserver()
        self.clock = clock
        self._queue: deque[_Waiting[T, R]] = deque()
        self._arrived = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    @property
    def depth(self) -> int:
        """Items waiting for a batch."""
        return len(self._queue)

    def start(self) -> None:
        """Start the worker tasks on the running event loop."""
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self._run(), name=f"batcher-{i}") for i in range(self.workers)
            ]

    async def submit(self, item: T, deadline: float | None = None) -> R:
        """Queue one item and wait for its result (``deadline`` on :attr:`clock`'s scale)."""
        return (await self.submit_many([item], deadline))[0]

    async def submit_many(self, items: Sequence[T], deadline: float | None = None) -> list[R]:
        """Queue several items at once (all or none) and wait for all their results."""
        if self._closing:
            raise ShuttingDownError("the server is shutting down; retry on another replica")
        if len(self._queue) + len(items) > self.queue_capacity:
            raise QueueFullError(
                f"the request queue is full ({len(self._queue)} of {self.queue_capacity} "
                "waiting); retry after a short backoff"
            )
        loop = asyncio.get_running_loop()
        now = self.clock()
        waiting = [_Waiting(it, self.size(it), deadline, now, loop.create_future()) for it in items]
        self._queue.extend(waiting)
        self.observer.queue_depth(len(self._queue))
        self._arrived.set()
        try:
            if len(waiting) == 1:
                return [await waiting[0].future]
            return list(await asyncio.gather(*(w.future for w in waiting)))
        finally:
            for w in waiting:  # the caller went away or a sibling failed: drop the rest
                if not w.future.done():
                    w.future.cancel()

    async def close(self) -> None:
        """Refuse new items, finish the waiting ones, then stop the workers."""
        self._closing = True
        self._arrived.set()
        if self._tasks:
            await asyncio.gather(*self._tasks)
            self._tasks = []

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
            await self._wait_for_batch()
            batch = self._take()
            self.observer.queue_depth(len(self._queue))
            if not batch:
                continue
            self.observer.batch_formed(len(batch), sum(w.size for w in batch))
            try:
                results = await loop.run_in_executor(
                    self.executor, self.process, [w.item for w in batch]
                )
            except Exception as exc:  # a failed forward pass fails its batch, not the server
                results = [exc] * len(batch)
            for w, result in zip(batch, results, strict=True):
                if w.future.done():
                    continue
                if isinstance(result, BaseException):
                    w.future.set_exception(result)
                else:
                    w.future.set_result(result)

    async def _wait_for_batch(self) -> None:
        """Return when a full batch waits, or the oldest item's delay is over, or on close."""
        oldest = self._queue[0]
        while len(self._queue) < self.max_batch_size and not self._closing:
            remaining = oldest.enqueued + self.max_delay - self.clock()
            if remaining <= 0 or oldest.future.done():
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    def _take(self) -> list[_Waiting[T, R]]:
        """Pop the next batch, dropping cancelled items and failing expired ones."""
        batch: list[_Waiting[T, R]] = []
        longest = 0
        now = self.clock()
        while self._queue and len(batch) < self.max_batch_size:
            w = self._queue[0]
            if w.future.done():  # cancelled by its caller
                self._queue.popleft()
                continue
            if w.deadline is not None and w.deadline <= now:
                self._queue.popleft()
                w.future.set_exception(
                    DeadlineExpiredError("the deadline passed while the request waited in queue")
                )
                continue
            cap = self.max_batch_candidates
            if batch and cap is not None and (len(batch) + 1) * max(longest, w.size) > cap:
                break
            longest = max(longest, w.size)
            batch.append(self._queue.popleft())
        return batch
