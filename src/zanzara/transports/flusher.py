"""Writing: every connection's output of a loop iteration in one ``write``, and the memory it may hold.

:class:`Flusher` is shared by all connections of one broker.  Handlers queue
packets on a connection and mark it; at the end of the loop iteration the
flusher writes each marked connection once.  One connection's failure (a
socket that died mid-write) is logged and closes that connection only: the
rest of the batch is still written.

It also keeps the broker-wide count of bytes waiting in the buffers of
connections whose sockets are full (``mqtt.max_write_buffer_total``).  Over
that limit, a connection that publishes stops being read (once the read in
hand is handled) until the sum falls back under it: the only backpressure a
publisher ever gets from subscribers.  One slow subscriber alone cannot reach
it, since each is capped by ``mqtt.max_write_buffer``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

__all__ = ["Flushable", "Flusher"]

logger = logging.getLogger(__name__)


class Flushable(Protocol):
    """What the flusher needs of a connection (``MqttConnection`` is one)."""

    def flush(self) -> None: ...

    def abort(self) -> None: ...

    def who(self) -> str: ...

    def pause_for_memory(self) -> None: ...

    def resume_after_memory(self) -> None: ...


class Flusher:
    """Writes every connection that has output once, at the end of the loop iteration."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, max_buffered: int = 0) -> None:
        self.loop = loop
        self._dirty: list[Flushable] = []
        self._scheduled = False
        # Bytes waiting in the write buffers of connections whose sockets are full.
        self.buffered = 0
        self.max_buffered = max_buffered
        # Over max_buffered: publishers are paused (those in _paused) until it is not.
        self.over = False
        self._paused: set[Flushable] = set()
        self.publisher_pauses = 0

    def mark(self, conn: Flushable) -> None:
        self._dirty.append(conn)
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self.run)

    def run(self) -> None:
        self._scheduled = False
        dirty = self._dirty
        self._dirty = []
        for conn in dirty:
            try:
                conn.flush()
            except Exception:
                # Never let one connection's failure leave the others of the batch unwritten.
                logger.exception("writing to %s failed; closing it", conn.who())
                conn.abort()

    # -- the broker-wide buffer limit ----------------------------------------------

    def grow(self, nbytes: int) -> None:
        """A full socket's buffer grew by ``nbytes``; over the limit, publishers will be held."""
        self.buffered += nbytes
        if self.max_buffered and self.buffered > self.max_buffered:
            self.over = True

    def hold(self, conn: Flushable) -> None:
        """Stop reading from ``conn`` (a publisher) until the buffers are back under the limit."""
        if conn in self._paused:
            return
        if not self._paused:
            logger.warning(
                "%d bytes wait for full sockets (max_write_buffer_total %d): "
                "pausing publishers until they drain",
                self.buffered,
                self.max_buffered,
            )
        self._paused.add(conn)
        self.publisher_pauses += 1
        conn.pause_for_memory()

    def shrink(self, nbytes: int) -> None:
        """A full socket's buffer shrank by ``nbytes`` (drained, or its connection went)."""
        self.buffered -= nbytes
        if self.over and self.buffered <= self.max_buffered:
            self.over = False
            paused = self._paused
            self._paused = set()
            if paused:
                logger.info("full sockets hold %d bytes: resuming %d publishers", self.buffered, len(paused))
            for conn in paused:
                conn.resume_after_memory()

    def forget(self, conn: Flushable) -> None:
        """``conn`` closed: it is no longer waiting for memory."""
        self._paused.discard(conn)
