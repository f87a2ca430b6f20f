"""Group commit shared by every durable back-end.

Writes are appended to an in-memory batch as operations (``ops.py``);
one writer task takes the whole batch, hands it to the back-end's
``write_batch`` (one transaction, one fsync), then resolves the futures of
everyone who asked for a commit while that batch was open.

Failure policy: when a batch fails, the commits waiting on it fail at once
(the broker then does not acknowledge those publishes), the error is logged,
and the same batch is retried with backoff before anything newer, so the
store never sees operations out of order and catches up when it comes back.
The batch is bounded only by what arrives while the previous one commits;
its size is reported in :attr:`BatchWriter.last_batch`, and how long each
written batch took in :attr:`BatchWriter.commit_times` (one clock read
before and after a batch, never per operation).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Awaitable, Callable

from ..errors import StoreError
from .ops import Op

__all__ = ["COMMIT_BUCKETS", "LINGER", "SETTLE_ITERATIONS", "BatchWriter", "CommitTimes"]

logger = logging.getLogger(__name__)

LINGER = 0.05  # seconds a durable write may wait for a commit to carry it
SETTLE_ITERATIONS = 2  # event-loop iterations a woken writer lets pass before taking the batch
# Upper bounds (seconds) of the commit-time buckets: an in-memory SQLite commit takes tens of
# microseconds, an fsync on a disk milliseconds, a Redis round trip over a network up to seconds.
COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class CommitTimes:
    """How long the written batches took: counts per bucket of :data:`COMMIT_BUCKETS`, sum, count.

    Kept here rather than in a metrics library so that the store depends on nothing of the
    sort; ``metrics.py`` turns it into a Prometheus histogram when scraped.  ``counts`` has one
    more slot than there are bounds: the batches slower than the last one.
    """

    __slots__ = ("count", "counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(COMMIT_BUCKETS) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(COMMIT_BUCKETS, seconds)] += 1
        self.sum += seconds
        self.count += 1


class BatchWriter:
    """The group commit of one store: gathers operations and hands each batch to ``write_batch``.

    Owned by a :class:`~.batched.BatchedStore`, which calls :meth:`start` and :meth:`close` on
    the event loop; ``write_batch`` is called by one task only, never concurrently, and must
    raise to fail a batch (it is retried).  ``failing`` is true from a failed batch until one
    succeeds; ``batches`` and ``last_batch`` count batches written and the last one's operations;
    ``commit_times`` holds how long each batch with operations took to write.
    """

    def __init__(self, name: str, write_batch: Callable[[list[Op]], Awaitable[None]]) -> None:
        self.name = name
        self._write_batch = write_batch
        self._ops: list[Op] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._next: asyncio.Future[None] | None = None  # the future of the batch being gathered
        self._done: asyncio.Future[None] | None = None  # a completed future, handed out again
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._dirty = False
        self._lingering = False
        self._writing = False  # the batch being written holds durable operations
        self.failing = False
        self.batches = 0
        self.last_batch = 0
        self.commit_times = CommitTimes()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"zanzara-{self.name}-writer")

    def add(self, op: Op) -> None:
        """Record an operation that a later commit() must wait for.

        It is written within LINGER seconds even if nobody asks for a commit (a CONNECT's will,
        a subscriber's acknowledgements), so that such writes coalesce into few batches.
        """
        self._ops.append(op)
        if not self._dirty:
            self._dirty = True
            if not self._lingering:
                self._lingering = True
                asyncio.get_running_loop().call_later(LINGER, self._linger_over)

    def _linger_over(self) -> None:
        self._lingering = False
        if self._dirty:
            self._wake.set()

    def add_lazy(self, op: Op) -> None:
        """Record an operation written with the next batch, which commit() does not wait for.

        Delivery receipts: an acknowledgement needs the message durable, not its receipt.
        """
        self._ops.append(op)
        self._wake.set()

    def commit(self) -> asyncio.Future[None]:
        """A future that completes when everything added so far is durable.

        Every caller until the next batch starts shares one future: a publish costs no
        future of its own, and the broker releases a whole batch's acks in one callback.
        """
        if not self._dirty and not self._writing and not self._waiters and not self.failing:
            return self._durable()  # nothing of the caller's is pending: already durable
        return self.flush()

    def flush(self) -> asyncio.Future[None]:
        """A future that completes when everything added so far, lazy writes included, is written."""
        fut = self._next
        if fut is None:
            fut = self._next = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            self._wake.set()
        return fut

    def _durable(self) -> asyncio.Future[None]:
        fut = self._done
        if fut is None:
            fut = self._done = asyncio.get_running_loop().create_future()
            fut.set_result(None)
        return fut

    async def _run(self) -> None:  # noqa: C901 - the writer loop: batching, retries and shutdown read top to bottom
        delay = 0.05
        retry: tuple[list[Op], list[asyncio.Future[None]]] | None = None
        while True:
            if retry is None:
                await self._wake.wait()
                # Let the loop read what already arrived before the batch is taken: an online
                # subscriber's PUBACK is often in the socket by now, and a queue entry it
                # acknowledges within the batch is never written (folding.py).  Two iterations
                # halved the rows a persistent QoS 1 fan-in writes; they cost no timer.
                for _ in range(SETTLE_ITERATIONS):
                    await asyncio.sleep(0)
                self._wake.clear()
                if not self._ops and not self._waiters:
                    if self._closing:
                        return
                    continue
                ops, waiters = self._ops, self._waiters
                self._ops, self._waiters, self._next = [], [], None
                self._writing = self._dirty
                self._dirty = False
            else:
                ops, waiters = retry
            try:
                if ops:
                    started = time.perf_counter()
                    await self._write_batch(ops)
                    self.commit_times.observe(time.perf_counter() - started)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self.failing:
                    logger.error("%s store failed, retrying: %s", self.name, exc)
                self.failing = True
                error = StoreError(f"{self.name} store unavailable: {exc}")
                # Commits asked for since (their writes queue behind this batch) fail too, at
                # once, rather than wait for the store to come back.
                waiters += self._waiters
                self._waiters, self._next = [], None
                for fut in waiters:
                    if not fut.done():
                        fut.set_exception(error)
                retry = (ops, [])
                await asyncio.sleep(delay)  # backoff before retrying the same batch
                delay = min(delay * 2, 2.0)
                continue
            if self.failing:
                logger.warning("%s store is back", self.name)
            self.failing = False
            self._writing = False
            retry = None
            delay = 0.05
            self.batches += 1
            self.last_batch = len(ops)
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
            if self._closing and not self._ops and not self._waiters:
                return

    async def close(self) -> None:
        """Write what is pending, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                async with asyncio.timeout(10):
                    await self._task
            except TimeoutError:
                logger.error("%s store: pending writes could not be flushed at shutdown", self.name)
                self._task.cancel()
