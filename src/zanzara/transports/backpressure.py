"""Write flow control of a connection: a full socket slows nobody but its own client.

Mixed into :class:`~.connection.MqttConnection` (as asyncio's own
``FlowControlMixin`` is mixed into its stream protocols): the transport calls
``pause_writing`` when the socket's buffer passes its high-water mark and
``resume_writing`` when it drains.  Meanwhile:

- what waits for the socket is counted, per connection and in the
  :class:`~.flusher.Flusher`'s broker-wide sum (``max_write_buffer_total``
  pauses the publishers feeding full sockets, nothing less);
- beyond ``mqtt.max_write_buffer`` the client is *congested*: the core drops
  QoS 0 messages to it and keeps QoS 1/2 ones in its session queue, pumped
  here when the socket drains;
- a socket that takes nothing for ``mqtt.write_timeout`` seconds loses its
  client (the will is published, a persistent session kept).

The connection's attributes it reads are declared, not assigned, here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..config import MqttConfig
from ..events import DisconnectReason

if TYPE_CHECKING:
    from ..core import Client, Core
    from .byte_transport import ByteTransport
    from .flusher import Flusher

__all__ = ["WriteFlowControl"]

logger = logging.getLogger(__name__)


class WriteFlowControl:
    """The output half of a connection's flow control (see the module docstring)."""

    # Its own slots (the connection declares the rest): instances stay without a __dict__.
    __slots__ = (
        "_drops_before",
        "_held",
        "_max_write_buffer",
        "_write_mark",
        "_write_paused",
        "_write_timeout",
        "_write_timer",
        "congested",
    )

    # The connection's, used here.
    transport: ByteTransport | None
    flusher: Flusher
    client: Client | None
    broker: Core
    _loop: asyncio.AbstractEventLoop
    _lingering: bool
    who: Callable[[], str]
    abort: Callable[[], None]
    # This half's own.
    _write_paused: bool  # the transport said pause_writing
    _held: int  # bytes waiting for the full socket, counted in the flusher's sum meanwhile
    _max_write_buffer: int
    congested: bool  # over max_write_buffer (ClientLink.congested)
    _drops_before: int  # the client's QoS 0 drops when congestion began
    _write_timeout: float
    _write_timer: asyncio.TimerHandle | None
    _write_mark: int  # the buffer's size at the last write_timeout look

    def _init_write_flow(self, cfg: MqttConfig) -> None:
        self._write_paused = False
        self._held = 0
        self._max_write_buffer = cfg.max_write_buffer
        self.congested = False
        self._drops_before = 0
        self._write_timeout = cfg.write_timeout
        self._write_timer = None
        self._write_mark = 0

    def _hold(self, size: int) -> None:
        """``size`` more bytes wait for our full socket: count them, congest beyond the limit."""
        self._held += size
        self.flusher.grow(size)
        if self._held > self._max_write_buffer and not self.congested:
            self._congest()

    def pause_writing(self) -> None:
        """The socket is full (over the transport's high-water mark): count what waits for it."""
        self._write_paused = True
        transport = self.transport
        size = transport.get_write_buffer_size() if transport is not None else 0
        self._held = size
        self.flusher.grow(size)
        if self._write_timeout and self._write_timer is None:
            self._write_mark = size
            self._write_timer = self._loop.call_later(self._write_timeout, self._check_write)

    def resume_writing(self) -> None:
        """The socket drained (under the low-water mark): stop counting, send what waited."""
        self._write_paused = False
        self._cancel_write_timer()
        if self._held:
            held, self._held = self._held, 0
            self.flusher.shrink(held)
        if self.congested:
            self.congested = False
            client = self.client
            if client is not None:
                dropped = client.messages_dropped - self._drops_before
                logger.info("%s reads again; %d QoS 0 messages to it were dropped", self.who(), dropped)
                if client.session.queued:
                    self.broker.pump(client)

    def _congest(self) -> None:
        self.congested = True
        client = self.client
        self._drops_before = client.messages_dropped if client is not None else 0
        logger.warning(
            "%s is not reading: %d bytes wait for it (max_write_buffer %d); "
            "QoS 0 messages to it are dropped and QoS 1/2 queued until it drains",
            self.who(),
            self._held,
            self._max_write_buffer,
        )

    def _check_write(self) -> None:
        """write_timeout: a full socket that took nothing since the last look loses its client."""
        self._write_timer = None
        transport = self.transport
        if not self._write_paused or transport is None or self._lingering:
            return
        size = transport.get_write_buffer_size()
        if size < self._write_mark:
            self._write_mark = size  # it took something: look again later
            self._write_timer = self._loop.call_later(self._write_timeout, self._check_write)
            return
        if self.client is not None:
            # Not a clean disconnect: the will is published, a persistent session kept.
            self.client.disconnect_reason = DisconnectReason.WRITE_TIMEOUT
        logger.info("closing %s: its socket took nothing for %.0f s", self.who(), self._write_timeout)
        self.abort()

    def _cancel_write_timer(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _recount_held(self, transport: ByteTransport) -> None:
        """After a write while paused: what waited in our list is in the transport's buffer
        now, and some of it may be sent."""
        size = transport.get_write_buffer_size()
        if size > self._held:
            self.flusher.grow(size - self._held)
        elif size < self._held:
            self.flusher.shrink(self._held - size)
        self._held = size

    def _release_held(self) -> None:
        """The connection is gone: what waited for it no longer counts."""
        self._cancel_write_timer()
        if self._held:
            self.flusher.shrink(self._held)
            self._held = 0
