"""One MQTT client connection over any byte stream (TCP, TLS, WebSocket).

An asyncio ``Protocol`` around :class:`~zanzara.protocol.ServerProtocol`:
bytes are parsed as they arrive and every complete packet is handled in
order, synchronously, unless the broker returns a coroutine (a hook to
await) — then reading pauses until it is done, so a connection's packets are
never reordered and there is no task per packet.

Writes are batched: whatever any handler queues for a connection during one
loop iteration goes out in one ``write`` (see :class:`Flusher`).  When a
socket's buffer is full, the connections publishing into it stop reading
until it drains (backpressure instead of unbounded memory).

Read limits use the same pause: over ``mqtt.max_bytes_rate`` the packets just
read wait until the rate has paid for their bytes, over ``mqtt.max_publish_rate``
the next PUBLISH waits for its turn; reading is paused meanwhile, so a flooding
client is slowed (TCP pushes back on it), never dropped, and nobody else waits.

The same class serves TCP, TLS and WebSocket: it needs only a
:class:`ByteTransport` (an asyncio transport, or the WebSocket adapter in
``websocket.py``, which writes one binary frame per flush and pauses the
socket under the WebSocket when asked to pause reading).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any, Protocol, cast

from ..broker import BrokerCore, Client
from ..errors import ProtocolError
from ..mqtt.enums import ReasonCode
from ..mqtt.packets import Auth, Connect, Disconnect, Packet, PubAck, Publish
from ..protocol import ConnectionPhase, ServerProtocol
from .admission import Admission
from .throttle import TokenBucket
from .tls import peer_common_name

__all__ = ["ByteTransport", "Flusher", "MqttConnection"]

logger = logging.getLogger(__name__)

# Above this many bytes waiting in one socket's buffer, QoS 0 messages to it are
# dropped rather than buffered: the bound on memory per slow subscriber.
HARD_WRITE_LIMIT = 8 * 1024 * 1024


class ByteTransport(Protocol):
    """What a connection needs from its transport: the subset of ``asyncio.Transport`` it uses."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def is_closing(self) -> bool: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def get_write_buffer_size(self) -> int: ...

    def get_extra_info(self, name: str, default: Any = None) -> Any: ...


class Flusher:
    """Writes every connection that has output once, at the end of the loop iteration."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._dirty: list[MqttConnection] = []
        self._scheduled = False
        # The connection whose packets are being handled now (the one to pause
        # when a recipient's socket is full).
        self.current: MqttConnection | None = None

    def mark(self, conn: MqttConnection) -> None:
        self._dirty.append(conn)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.run)

    def run(self) -> None:
        self._scheduled = False
        dirty = self._dirty
        self._dirty = []
        for conn in dirty:
            conn.flush()


class MqttConnection(asyncio.Protocol):
    """A client connection; implements the broker's ``ClientLink``."""

    def __init__(
        self,
        broker: BrokerCore,
        flusher: Flusher,
        *,
        listener_name: str | None = None,
        on_close: Any = None,
    ) -> None:
        cfg = broker.config
        self.broker = broker
        self.flusher = flusher
        self.protocol = ServerProtocol(
            max_packet_size=cfg.max_packet_size,
            receive_maximum=cfg.receive_maximum,
            topic_alias_maximum=cfg.topic_alias_maximum,
            max_topic_levels=cfg.max_topic_levels,
            max_topic_length=cfg.max_topic_length,
            max_qos=cfg.max_qos,
        )
        # Set by the server from the connection limits before the transport attaches.
        self.admission = Admission.SERVE
        self.client: Client | None = None
        self.transport: ByteTransport | None = None
        # Set by the listener (use_identity_as_username): the client certificate's
        # Common Name replaces the CONNECT's username and password.
        self.identity_as_username = False
        self._identity: str | None = None
        self._listener_name = listener_name
        self._on_close = on_close
        self._address: str | None = None
        self._loop = flusher._loop
        self._dirty = False
        self._closing = False
        self._pending: deque[Packet] = deque()
        self._task: asyncio.Task[None] | None = None
        self._keep_alive = 0.0
        self._last_rx = 0.0
        self._timer: asyncio.TimerHandle | None = None
        # Backpressure: connections blocked on our full socket, and how many
        # full sockets block our reading.
        self._write_paused = False
        self._blocked_readers: set[MqttConnection] = set()
        self._blocked_by = 0
        self._reading_paused = False
        # Read limits; None (the default) costs one attribute test per read or PUBLISH.
        now = self._loop.time()
        self._publish_bucket = TokenBucket(cfg.max_publish_rate, now) if cfg.max_publish_rate else None
        self._bytes_bucket = TokenBucket(cfg.max_bytes_rate, now) if cfg.max_bytes_rate else None

    # -- ClientLink ---------------------------------------------------------------

    @property
    def address(self) -> str | None:
        return self._address

    @property
    def listener_name(self) -> str | None:
        return self._listener_name

    def send(self, packet: Packet) -> None:
        self.protocol.send(packet)
        self._mark()

    def send_bytes(self, data: bytes) -> bool:
        if self._write_paused:
            current = self.flusher.current
            if current is not None and current is not self:
                current._block_on(self)
            transport = self.transport
            if transport is not None and transport.get_write_buffer_size() > HARD_WRITE_LIMIT:
                return False
        if not self.protocol.send_bytes(data):
            return False
        if not self._dirty:
            self._dirty = True
            self.flusher.mark(self)
        return True

    def close(self) -> None:
        """Flush queued output, then close."""
        if self._closing:
            return
        self._closing = True
        self._mark()

    def set_keep_alive(self, seconds: int) -> None:
        self._cancel_timer()
        if seconds > 0:
            # [MQTT-3.1.2-22] one and a half times the keep alive.
            self._keep_alive = seconds * 1.5
            self._timer = self._loop.call_later(self._keep_alive, self._check_keep_alive)

    # -- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.attach(cast(ByteTransport, transport))

    def attach(self, transport: ByteTransport) -> None:
        """Start serving over ``transport`` (after its TLS and WebSocket handshakes)."""
        self.transport = transport
        if self.admission is Admission.DROP:
            logger.info("closing a new connection: over max_connections, too many refusals pending")
            self._abort()
            return
        if self.identity_as_username:
            ssl_object = transport.get_extra_info("ssl_object")
            self._identity = peer_common_name(ssl_object.getpeercert() if ssl_object else None)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._address = f"{peer[0]}:{peer[1]}"
        self._last_rx = self._loop.time()
        # [MQTT-3.1.4-?] the CONNECT must come within connect_timeout.
        self._timer = self._loop.call_later(self.broker.config.connect_timeout, self._connect_timeout)

    def data_received(self, data: bytes) -> None:
        now = self._last_rx = self._loop.time()
        packets = self.protocol.receive_data(data)
        if self._task is not None:
            self._pending.extend(packets)
            if self._bytes_bucket is not None:
                # Read while a step was awaited: charged now, waited for with the next read.
                self._bytes_bucket.take(len(data), now)
        elif self._bytes_bucket is not None and (wait := self._bytes_bucket.take(len(data), now)):
            # Over max_bytes_rate: these packets wait until the rate has paid for them.
            self._pending.extend(packets)
            self._start_task(asyncio.sleep(wait))
        else:
            self._process(packets)
            self._fail_deferred()
        self._mark()

    def eof_received(self) -> bool | None:
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._cancel_timer()
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for reader in self._blocked_readers:
            reader._unblock()
        self._blocked_readers.clear()
        client = self.client
        if client is not None:
            self.client = None
            try:
                self.broker.disconnected(client)
            except Exception:
                logger.exception("disconnect of %s failed", client.info.client_id)
        if self._on_close is not None:
            self._on_close(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        blocked = self._blocked_readers
        self._blocked_readers = set()
        for reader in blocked:
            reader._unblock()

    # -- handling -----------------------------------------------------------------

    def _process(self, packets: list[Packet] | deque[Packet]) -> None:
        flusher = self.flusher
        flusher.current = self
        try:
            i, n = 0, len(packets)
            while i < n:
                packet = packets[i]
                i += 1
                if type(packet) is PubAck and i < n and type(packets[i]) is PubAck:
                    # A run of PUBACKs (a subscriber answering a window of messages in one
                    # write) is handled as one: the same per packet, one refill of the window.
                    j = i + 1
                    while j < n and type(packets[j]) is PubAck:
                        j += 1
                    self._handle_pubacks(cast(list[PubAck], [packets[k] for k in range(i - 1, j)]))
                    i = j
                    continue
                step = self._handle(packet)
                if step is not None:
                    self._pending.extend(list(packets)[i:])
                    self._start_task(step)
                    return
        finally:
            flusher.current = None

    def _handle_pubacks(self, packets: list[PubAck]) -> None:
        client = self.client
        if self._closing or client is None or self.protocol.phase is ConnectionPhase.CLOSED:
            return
        try:
            self.broker.handle_pubacks(client, packets)
        except Exception:
            logger.exception("error handling PUBACKs from %s", self._who())
            self.protocol.fail(ProtocolError("internal error", ReasonCode.UNSPECIFIED_ERROR))
            self._protocol_failed()

    def _handle(self, packet: Packet) -> Coroutine[Any, Any, None] | None:
        """Handle one packet; a coroutine when it has to wait. Never raises."""
        if self._closing:
            return None  # nothing after DISCONNECT or an error is acted upon
        try:
            client = self.client
            if client is None:
                if type(packet) is Connect:
                    return self._connect(packet)
                if type(packet) is Auth:  # the next round of an enhanced authentication
                    return self._admission(self.broker.continue_connect(self, packet))
                return None  # packets after a refused CONNECT
            if self.protocol.phase is ConnectionPhase.CLOSED:
                return None
            if self._publish_bucket is not None and type(packet) is Publish:
                wait = self._publish_bucket.take(1, self._loop.time())
                if wait:
                    return self._handle_later(client, packet, wait)
            step = self.broker.handle(client, packet)
            if type(packet) is Disconnect:
                self.close()
            return step
        except ProtocolError as exc:
            self.protocol.fail(exc)
            self._protocol_failed()
        except Exception:
            logger.exception("error handling %s from %s", type(packet).__name__, self._who())
            self.protocol.fail(ProtocolError("internal error", ReasonCode.UNSPECIFIED_ERROR))
            self._protocol_failed()
        return None

    def _connect(self, packet: Connect) -> Coroutine[Any, Any, None] | None:
        if self.admission is Admission.REFUSE:
            # Over max_connections: "an implementation or administrative imposed limit has
            # been exceeded", CONNACK 0x97 (section 3.2.2.2, Table 3-1); 3.1.1: 0x03.
            logger.info("refusing %s: too many connections", self._who())
            self.protocol.refuse(ReasonCode.QUOTA_EXCEEDED, "too many connections")
            self._connected(None)
            return None
        if self.identity_as_username:
            if self._identity is None:
                # As Mosquitto: no certificate (or no usable Common Name), no entry.
                logger.info("refusing %s: no client certificate Common Name", self._who())
                self.protocol.refuse(ReasonCode.BAD_USER_NAME_OR_PASSWORD, "no client certificate")
                self._connected(None)
                return None
            packet = replace(packet, username=self._identity, password=None)
        return self._admission(self.broker.connect(self, packet))

    def _admission(
        self, result: Client | Coroutine[Any, Any, Client | None] | None
    ) -> Coroutine[Any, Any, None] | None:
        if result is None or isinstance(result, Client):
            self._connected(result)
            return None
        return self._connect_async(result)

    async def _connect_async(self, pending: Coroutine[Any, Any, Client | None]) -> None:
        self._connected(await pending)

    def _connected(self, client: Client | None) -> None:
        if client is None:
            if self.protocol.phase is not ConnectionPhase.CONNECTING:
                self.close()  # refused: the CONNACK is queued
            return  # else an enhanced authentication waits for the client's next AUTH
        if self._closing:  # the socket went away while the CONNECT was decided
            self.broker.disconnected(client)
            return
        self.client = client

    def _start_task(self, step: Coroutine[Any, Any, None]) -> None:
        self._pause_reading()
        self._task = self._loop.create_task(self._run(step))

    async def _run(self, step: Coroutine[Any, Any, None] | None) -> None:
        """Await a handler's coroutine, then handle what queued up behind it, in order."""
        try:
            while step is not None:
                try:
                    await step
                except ProtocolError as exc:
                    self.protocol.fail(exc)
                    self._protocol_failed()
                except Exception:
                    logger.exception("error handling a packet from %s", self._who())
                    self.protocol.fail(ProtocolError("internal error", ReasonCode.UNSPECIFIED_ERROR))
                    self._protocol_failed()
                self._mark()
                step = None
                self.flusher.current = self
                try:
                    while self._pending and step is None:
                        step = self._handle(self._pending.popleft())
                finally:
                    self.flusher.current = None
                self._mark()
        finally:
            self._task = None
            self._fail_deferred()
            self._unpause_reading()

    # -- errors, timers, output ----------------------------------------------------

    def _fail_deferred(self) -> None:
        """A parse error found after some good packets: fail once those are handled."""
        exc = self.protocol.deferred_error
        if exc is not None and self._task is None and self.protocol.error is None:
            self.protocol.fail(exc)
            self._protocol_failed()

    def _protocol_failed(self) -> None:
        exc = self.protocol.error
        self.broker.stats.malformed_packets += 1
        if self.client is not None:
            self.client.disconnect_reason = "protocol_error"
        logger.info("closing %s: %s (0x%02x)", self._who(), exc, exc.reason_code if exc else 0)
        self.close()

    def _who(self) -> str:
        if self.client is not None:
            return f"client {self.client.info.client_id!r} ({self._address})"
        return f"connection {self._address}"

    def _connect_timeout(self) -> None:
        self._timer = None
        if self.client is None and not self._closing and self._task is None:
            logger.debug("%s sent no CONNECT in time", self._who())
            self._abort()

    def _check_keep_alive(self) -> None:
        now = self._loop.time()
        if self._reading_paused:
            # We stopped reading (a read limit, backpressure, a hook): the silence is ours.
            self._last_rx = now
        idle = now - self._last_rx
        if idle >= self._keep_alive:
            self._timer = None
            if self.client is not None:
                self.client.disconnect_reason = "keepalive"
            logger.info("closing %s: keep alive timeout", self._who())
            self.protocol.disconnect(ReasonCode.KEEP_ALIVE_TIMEOUT)
            self.close()
            return
        self._timer = self._loop.call_later(self._keep_alive - idle, self._check_keep_alive)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _mark(self) -> None:
        if not self._dirty:
            self._dirty = True
            self.flusher.mark(self)

    def flush(self) -> None:
        self._dirty = False
        transport = self.transport
        if transport is None:
            return
        out = self.protocol.data_to_send()
        if out:
            transport.write(out[0] if len(out) == 1 else b"".join(out))
        if self._closing and not transport.is_closing():
            transport.close()

    def _abort(self) -> None:
        self._closing = True
        if self.transport is not None:
            self.transport.abort()

    def shutdown(self, reason_code: int = ReasonCode.SERVER_SHUTTING_DOWN) -> None:
        """Server shutdown: v5 clients get DISCONNECT 0x8B [MQTT-3.14]."""
        if self.client is not None:
            self.client.disconnect_reason = "shutdown"
        self.protocol.disconnect(reason_code)
        self.close()

    # -- backpressure ----------------------------------------------------------------

    def _block_on(self, target: MqttConnection) -> None:
        if self not in target._blocked_readers:
            target._blocked_readers.add(self)
            self._blocked_by += 1
            self._pause_reading()

    def _unblock(self) -> None:
        self._blocked_by -= 1
        if self._blocked_by <= 0:
            self._blocked_by = 0
            self._unpause_reading()

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None and not self._closing:
            self._reading_paused = True
            self.transport.pause_reading()

    def _unpause_reading(self) -> None:
        if self._reading_paused and self._blocked_by == 0 and self._task is None and not self._closing:
            self._reading_paused = False
            if self.transport is not None:
                self.transport.resume_reading()

    # -- read limits -------------------------------------------------------------------

    async def _handle_later(self, client: Client, packet: Packet, wait: float) -> None:
        """Over max_publish_rate: handle ``packet`` once the rate allows (reading is paused meanwhile)."""
        # The non-normative comment in MQTT 5.0 section 3.1.4 suggests limiting reading
        # against denial of service; waiting here keeps every packet and their order.
        await asyncio.sleep(wait)
        if self._closing or self.protocol.phase is ConnectionPhase.CLOSED:
            return
        self.flusher.current = self
        try:
            step = self.broker.handle(client, packet)
        finally:
            self.flusher.current = None
        if step is not None:
            await step
