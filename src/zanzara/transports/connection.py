"""One MQTT client connection over any byte stream (TCP, TLS, WebSocket).

An asyncio ``Protocol`` around :class:`~zanzara.protocol.ServerProtocol`:
bytes are parsed as they arrive and every complete packet is handled in
order, synchronously, unless the broker returns a coroutine (a hook to
await) — then reading pauses until it is done, so a connection's packets are
never reordered and there is no task per packet.

Writes are batched: whatever any handler queues for a connection during one
loop iteration goes out in one ``write`` (see :class:`~.flusher.Flusher`).

Flow control, both ways, never drops the connection:

- In: while ``mqtt.receive_maximum`` QoS 1/2 PUBLISH wait for our PUBACK or
  PUBREC (a store commit), reading pauses; TCP slows the client.  Read limits
  (``max_bytes_rate``, ``max_publish_rate``) pause the same way.  Keep-alive
  does not count time we spent not reading.
- Out: a full socket slows nobody but its own client (congestion,
  ``write_timeout``; see ``backpressure.py``, mixed in here).  Only the
  broker-wide ``max_write_buffer_total`` pauses publishers.

When the broker ends a connection it closes the way HTTP servers do (a
lingering close): after the last packet it shuts down its writing side and
reads and discards for a bounded time and size, so a client still sending
reads our DISCONNECT or CONNACK instead of a reset.

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
from typing import Any, cast

from ..auth.exchange import AuthExchange
from ..config import MqttConfig
from ..core import Admitted, Awaiting, Challenge, Client, ConnectResult, Core, Refused
from ..core.client import Traffic
from ..errors import ProtocolError
from ..events import DisconnectReason
from ..message import Message
from ..mqtt.enums import PacketType, ProtocolVersion, ReasonCode
from ..mqtt.packets import ConnAck, Connect, Packet, Publish, Subscribe, Unsubscribe
from ..protocol import ConnectionPhase, Event, Hold, PubAcks, PublishEncoder, ServerProtocol
from ..throttle import TokenBucket
from .admission import Admission
from .backpressure import WriteFlowControl
from .byte_transport import ByteTransport
from .flusher import Flusher
from .tls import peer_common_name

__all__ = ["ByteTransport", "Flusher", "MqttConnection", "ProtocolFacts", "new_protocol"]

logger = logging.getLogger(__name__)

# The lingering close: how long, and how many bytes, we read and discard after our last packet.
LINGER_SECONDS = 2.0
LINGER_BYTES = 1024 * 1024


def describe(event: Event) -> str:
    """A packet in one line for the debug log, as Mosquitto's: flags, ids, topic and size; never
    a payload or a password."""
    match event:
        case Publish(topic=topic, qos=qos, retain=retain, dup=dup, packet_id=pid, payload=payload):
            flags = f"d{int(dup)}, q{qos}, r{int(retain)}, m{pid or 0}"
            return f"PUBLISH ({flags}, {topic!r}, ... ({len(payload)} bytes))"
        case Connect(client_id=cid, protocol_version=version, clean_start=clean, keep_alive=keep):
            return f"CONNECT ({cid!r}, p{int(version)}, c{int(clean)}, k{keep})"
        case Subscribe(packet_id=pid, subscriptions=subs):
            return f"SUBSCRIBE (m{pid}, " + ", ".join(f"{s.topic_filter!r} q{s.qos}" for s in subs) + ")"
        case Unsubscribe(packet_id=pid, topic_filters=filters):
            return f"UNSUBSCRIBE (m{pid}, " + ", ".join(repr(f) for f in filters) + ")"
        case PubAcks(packets=acks):
            return f"PUBACK x{len(acks)} (m{acks[0].packet_id}..m{acks[-1].packet_id})"
        case Hold(until=until):
            return f"a hold until {until:.3f} (max_publish_rate)"
    pid = getattr(event, "packet_id", None)
    name = PacketType(event.packet_type).name
    return f"{name} (m{pid})" if pid is not None else name


class ProtocolFacts:
    """The part of ``ClientLink`` its protocol answers alone (the core tests' fake link shares it)."""

    __slots__ = ()

    protocol: ServerProtocol

    @property
    def receive_maximum(self) -> int:
        return self.protocol.client_receive_maximum

    @property
    def auth_method(self) -> str | None:
        return self.protocol.auth_method

    @property
    def is_connecting(self) -> bool:
        return self.protocol.phase is ConnectionPhase.CONNECTING

    @property
    def is_open(self) -> bool:
        return self.protocol.phase is ConnectionPhase.CONNECTED

    @property
    def traffic(self) -> Traffic:
        p = self.protocol
        return Traffic(p.publishes_received, p.publishes_sent, p.bytes_received, p.bytes_sent)

    def fits(self, packet: Packet) -> bool:
        return self.protocol.fits(packet)


def new_protocol(cfg: MqttConfig) -> ServerProtocol:
    """The sans-I/O protocol of one connection, with the limits of ``[mqtt]``."""
    return ServerProtocol(
        max_packet_size=cfg.max_packet_size,
        receive_maximum=cfg.receive_maximum,
        topic_alias_maximum=cfg.topic_alias_maximum,
        max_topic_levels=cfg.max_topic_levels,
        max_topic_length=cfg.max_topic_length,
        max_qos=cfg.max_qos,
        disconnect_over_receive_maximum=cfg.receive_maximum_exceeded == "disconnect",
        max_publish_rate=cfg.max_publish_rate,
    )


class MqttConnection(WriteFlowControl, ProtocolFacts, asyncio.Protocol):
    """A client connection; implements the broker's ``ClientLink``."""

    # Slots, not a __dict__: CPython 3.11 specializes attribute access only for instances
    # with at most 30 dict keys, and a connection has more; every send and flush reads them.
    # (Without slots, unicast deliveries/s fell by 7-10% when the flow-control state came.)
    __slots__ = (
        "_address",
        "_bytes_bucket",
        "_closing",
        "_dirty",
        "_exceeded_noted",
        "_linger_budget",
        "_lingering",
        "_listener_name",
        "_loop",
        "_memory_paused",
        "_on_close",
        "_pending",
        "_reading_paused",
        "_stats",
        "_task",
        "_timer",
        "_window_full",
        "admission",
        "auth_exchange",
        "broker",
        "certificate_username",
        "client",
        "flusher",
        "identity_as_username",
        "protocol",
        "transport",
    )

    def __init__(
        self,
        broker: Core,
        flusher: Flusher,
        *,
        listener_name: str | None = None,
        on_close: Any = None,
    ) -> None:
        cfg = broker.config
        self.broker = broker
        self._stats = broker.stats  # counted once per read and per write
        self.flusher = flusher
        self.protocol = new_protocol(cfg)
        # Set by the server from the connection limits before the transport attaches.
        self.admission = Admission.SERVE
        self.client: Client | None = None
        self.transport: ByteTransport | None = None
        # Set by the listener (use_identity_as_username): the client certificate's
        # Common Name replaces the CONNECT's username and password.
        self.identity_as_username = False
        self.certificate_username: str | None = None
        self._listener_name = listener_name
        self._on_close = on_close
        self._address: str | None = None
        self._loop = flusher.loop
        self._dirty = False
        # close() was called: nothing more is acted upon, output is flushed, then we close.
        self._closing = False
        # Our side is shut down (write_eof) and we read and discard until the client closes.
        self._lingering = False
        self._linger_budget = LINGER_BYTES
        self._pending: deque[Event] = deque()
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        # Why reading is paused (any of them): our inbound window is full; the broker-wide
        # write buffer limit; and, through _task, a hook or a read limit being awaited.
        self._reading_paused = False
        self._window_full = False
        self._memory_paused = False
        self._exceeded_noted = False  # over receive_maximum: counted and logged once
        self._init_write_flow(cfg)
        # The enhanced authentication in progress (MQTT 5 section 4.12): it goes with the connection.
        self.auth_exchange: AuthExchange | None = None
        # max_bytes_rate; None (the default) costs one attribute test per read.  (The
        # protocol times max_publish_rate: it sees the PUBLISH.)
        rate = cfg.max_bytes_rate
        self._bytes_bucket = TokenBucket(rate, self._loop.time()) if rate else None

    # -- ClientLink ---------------------------------------------------------------

    @property
    def address(self) -> str | None:
        return self._address

    @property
    def over_connection_limit(self) -> bool:
        return self.admission is Admission.REFUSE

    @property
    def listener_name(self) -> str | None:
        return self._listener_name

    def send(self, packet: Packet) -> None:
        protocol = self.protocol
        protocol.send(packet)
        if self._window_full and not protocol.inbound_full:
            # Our acknowledgements caught up with a pipelining publisher: read again.
            self._window_full = False
            self._unpause_reading()
        self._mark()

    def send_publish(
        self, encoder: PublishEncoder, qos: int, retain: bool, sub_ids: tuple[int, ...], packet_id: int = 0
    ) -> bool:
        # _queued inlined: this runs once per delivery of every fan-out.
        size = self.protocol.send_publish(encoder, qos, retain, sub_ids, packet_id)
        if not size:
            return False
        if self._write_paused:
            self._hold(size)
        if not self._dirty:
            self._dirty = True
            self.flusher.mark(self)
        return True

    def send_message(
        self,
        message: Message,
        qos: int,
        retain: bool,
        sub_ids: tuple[int, ...],
        packet_id: int,
        now: float,
        *,
        dup: bool = False,
    ) -> bool:
        return self._queued(
            self.protocol.send_message(message, qos, retain, sub_ids, packet_id, now, dup=dup)
        )

    def _queued(self, size: int) -> bool:
        """A PUBLISH of ``size`` bytes was queued (0: it was not): count it against a full socket."""
        if not size:
            return False
        if self._write_paused:
            self._hold(size)
        if not self._dirty:
            self._dirty = True
            self.flusher.mark(self)
        return True

    def accept(self, connack: ConnAck, keep_alive: int) -> None:
        self.protocol.accept(connack)
        self.set_keep_alive(keep_alive)
        self._mark()

    def refuse(self, reason_code: int, reason: str | None = None) -> None:
        logger.info("refusing %s: %s (0x%02x)", self.who(), reason or "refused", reason_code)
        self.broker.stats.connects_refused[reason_code] += 1
        self.protocol.refuse(reason_code, reason)
        self._mark()

    def disconnect(self, reason_code: int, reason: str | None = None) -> None:
        self.protocol.disconnect(reason_code, reason)
        self.close()

    def close(self) -> None:
        """Flush queued output, then close."""
        if self._closing:
            return
        self._closing = True
        self._mark()

    def set_keep_alive(self, seconds: int) -> None:
        self._cancel_timer()
        protocol = self.protocol
        protocol.set_keep_alive(seconds)
        protocol.heard(self._loop.time())  # counted from the CONNACK, whatever a hook took
        deadline = protocol.keep_alive_deadline()
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._check_keep_alive)

    # -- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.attach(cast(ByteTransport, transport))

    def attach(self, transport: ByteTransport) -> None:
        """Start serving over ``transport`` (after its TLS and WebSocket handshakes)."""
        self.transport = transport
        self._stats.sockets_opened += 1
        if self.admission is Admission.DROP:
            logger.info("closing a new connection: over max_connections, too many refusals pending")
            self.abort()
            return
        if self.identity_as_username:
            ssl_object = transport.get_extra_info("ssl_object")
            self.certificate_username = peer_common_name(ssl_object.getpeercert() if ssl_object else None)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._address = f"{peer[0]}:{peer[1]}"
        self.protocol.heard(self._loop.time())
        # section 3.1.4: the CONNECT must come within connect_timeout.
        self._timer = self._loop.call_later(self.broker.config.connect_timeout, self._connect_timeout)

    def data_received(self, data: bytes) -> None:
        stats = self._stats
        stats.bytes_received += len(data)
        if self._lingering:
            # After our last packet: read and discard, within bounds.
            self._linger_budget -= len(data)
            if self._linger_budget < 0:
                self.abort()
            return
        now = self._loop.time()
        protocol = self.protocol
        publishes = protocol.publishes_received
        packets = protocol.receive_data(data, now)
        stats.packets_received += len(packets)  # a run of PUBACKs is one: the core adds the rest
        if logger.isEnabledFor(logging.DEBUG):  # one test per read; the lines only at debug
            for packet in packets:
                logger.debug("received %s from %s", describe(packet), self.who())
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
        if self.flusher.over and protocol.publishes_received != publishes:
            # The buffers of full sockets hold more than max_write_buffer_total: publishers wait.
            self.flusher.hold(self)
        if protocol.inbound_full and not self._closing:
            self._window_full = True
            self._pause_reading()
            if protocol.exceeded_receive_maximum:
                self._note_exceeded()
        self._mark()

    def _note_exceeded(self) -> None:
        """Once per connection: the client had more unacknowledged QoS 1/2 PUBLISH than receive_maximum."""
        protocol = self.protocol
        protocol.exceeded_receive_maximum = False
        if self._exceeded_noted:
            return
        self._exceeded_noted = True
        self.broker.stats.receive_maximum_exceeded += 1
        if protocol.version is ProtocolVersion.MQTT5:
            logger.info(
                "%s sent more unacknowledged QoS 1/2 PUBLISH than our Receive Maximum (%d): "
                "reading from it pauses until they are acknowledged",
                self.who(),
                protocol.receive_maximum,
            )

    def eof_received(self) -> bool | None:
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._cancel_timer()
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._release_held()
        self.flusher.forget(self)
        # Nothing can be written any more: a flush already scheduled skips this connection.
        self.transport = None
        self._release_client()
        if self._on_close is not None:
            self._on_close(self)

    def _release_client(self) -> None:
        """The MQTT connection is over (its socket may linger): the broker learns it once."""
        client = self.client
        if client is not None:
            self.client = None
            try:
                self.broker.disconnected(client)
            except Exception:
                logger.exception("disconnect of %s failed", client.info.client_id)

    # -- handling -----------------------------------------------------------------

    def _process(self, events: list[Event] | deque[Event]) -> None:
        for i, event in enumerate(events):
            step = self._handle(event)
            if step is not None:
                self._pending.extend(list(events)[i + 1 :])
                self._start_task(step)
                return

    def _handle(self, event: Event) -> Coroutine[Any, Any, None] | None:
        """Handle one event of the protocol; a coroutine when it has to wait. Never raises."""
        if self._closing:
            return None  # nothing after DISCONNECT or an error is acted upon
        try:
            if isinstance(event, Hold):
                # Over max_publish_rate: what follows waits (reading is paused meanwhile).
                wait = event.until - self._loop.time()
                return asyncio.sleep(wait) if wait > 0 else None
            client = self.client
            if client is None:
                # CONNECT, or the next AUTH of an enhanced authentication; after a refusal, None.
                result = self.broker.connecting(self, event)
                return None if result is None else self._on_connect_result(result)
            if self.protocol.phase is ConnectionPhase.CLOSED:
                return None
            return self.broker.handle(client, event)
        except Exception as exc:
            self._fail(exc, type(event).__name__)
        return None

    def _on_connect_result(self, result: ConnectResult) -> Coroutine[Any, Any, None] | None:
        if isinstance(result, Awaiting):
            return self._connect_async(result.pending)
        self._connected(result)
        return None

    async def _connect_async(self, pending: Coroutine[Any, Any, Admitted | Refused | Challenge]) -> None:
        self._connected(await pending)

    def _connected(self, result: Admitted | Refused | Challenge) -> None:
        match result:
            case Admitted(client=client):
                if self._closing:  # the socket went away while the CONNECT was decided
                    self.broker.disconnected(client)
                else:
                    self.client = client
            case Refused():
                self.close()  # the refusing CONNACK (if the version has one) is queued
            case Challenge():
                pass  # an enhanced authentication waits for the client's next AUTH

    def _start_task(self, step: Coroutine[Any, Any, None]) -> None:
        self._pause_reading()
        self._task = self._loop.create_task(self._run(step))

    async def _run(self, step: Coroutine[Any, Any, None] | None) -> None:
        """Await a handler's coroutine, then handle what queued up behind it, in order."""
        try:
            while step is not None:
                try:
                    await step
                except Exception as exc:
                    self._fail(exc, "a packet")
                self._mark()
                step = None
                while self._pending and step is None:
                    step = self._handle(self._pending.popleft())
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
            self._fail(exc, "a packet")

    def _fail(self, exc: Exception, handling: str) -> None:
        """The connection's one error boundary: answer and close, whatever went wrong.

        A :class:`ProtocolError` is the client's: its reason code goes back (CONNACK or v5
        DISCONNECT, ``protocol.fail``).  Anything else is ours: logged with its traceback,
        counted apart, and the client gets 0x80 Unspecified error.
        """
        if isinstance(exc, ProtocolError):
            self.broker.stats.malformed_packets += 1
        else:
            logger.error("error handling %s from %s", handling, self.who(), exc_info=exc)
            self.broker.stats.internal_errors += 1
            exc = ProtocolError("internal error", ReasonCode.UNSPECIFIED_ERROR)
        self.protocol.fail(exc)
        if self.client is not None:
            self.client.disconnect_reason = DisconnectReason.PROTOCOL_ERROR
        logger.info("closing %s: %s (0x%02x)", self.who(), exc, exc.reason_code)
        self.close()

    def who(self) -> str:
        if self.client is not None:
            return f"client {self.client.info.client_id!r} ({self._address})"
        return f"connection {self._address}"

    def _connect_timeout(self) -> None:
        self._timer = None
        if self.client is None and not self._closing and self._task is None:
            logger.debug("%s sent no CONNECT in time", self.who())
            self.abort()

    def _check_keep_alive(self) -> None:
        now = self._loop.time()
        protocol = self.protocol
        if self._reading_paused:
            # We stopped reading (a read limit, backpressure, a hook): the silence is ours.
            protocol.heard(now)
        deadline = protocol.keep_alive_deadline()
        if deadline is None:
            self._timer = None
            return
        if now >= deadline:
            self._timer = None
            if self.client is not None:
                self.client.disconnect_reason = DisconnectReason.KEEPALIVE
            logger.info("closing %s: keep alive timeout", self.who())
            self.protocol.disconnect(ReasonCode.KEEP_ALIVE_TIMEOUT)
            self.close()
            return
        self._timer = self._loop.call_at(deadline, self._check_keep_alive)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _mark(self) -> None:
        if not self._dirty:
            self._dirty = True
            self.flusher.mark(self)

    def flush(self) -> None:
        """Write what was queued in this loop iteration (called by the flusher)."""
        self._dirty = False
        out = self.protocol.data_to_send()
        transport = self.transport
        if transport is None or self._lingering or transport.is_closing():
            return  # the socket is gone or going: what was queued for it can never be written
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            transport.write(data)
            size = len(data)
            self.protocol.bytes_sent += size  # counted here, where the size is known
            stats = self._stats
            stats.bytes_sent += size
            stats.packets_sent += len(out)  # the protocol queues one bytes object per packet
            if self._write_paused:
                self._recount_held(transport)
        if self._closing:
            self._close(transport)

    def _close(self, transport: ByteTransport) -> None:
        """After our last packet: a lingering close where the transport can half-close."""
        if not transport.can_write_eof():
            transport.close()  # TLS, WebSocket: their own closing handshakes
            return
        # Reading the client's late bytes keeps the kernel from answering them with a reset,
        # which could destroy our DISCONNECT or CONNACK in the client's receive buffer.
        self._lingering = True
        self._cancel_timer()
        # Wills, session expiry and a reconnect's takeover need not wait for the socket.
        self._release_client()
        transport.write_eof()
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        self._timer = self._loop.call_later(LINGER_SECONDS, self._end_linger)

    def _end_linger(self) -> None:
        self._timer = None
        transport = self.transport
        if transport is not None:
            if transport.get_write_buffer_size():
                transport.abort()  # the client reads nothing: drop what it would not take
            else:
                transport.close()

    def abort(self) -> None:
        """Close at once, dropping anything unsent."""
        self._closing = True
        if self.transport is not None:
            self.transport.abort()

    def shutdown(self, reason_code: int = ReasonCode.SERVER_SHUTTING_DOWN) -> None:
        """Server shutdown: v5 clients get DISCONNECT 0x8B (section 3.14)."""
        if self.client is not None:
            self.client.disconnect_reason = DisconnectReason.SHUTDOWN
        self.protocol.disconnect(reason_code)
        self.close()

    # -- pausing reads ------------------------------------------------------------------

    def pause_for_memory(self) -> None:
        """Over max_write_buffer_total: the flusher pauses the publisher filling the buffers."""
        self._memory_paused = True
        self._pause_reading()

    def resume_after_memory(self) -> None:
        self._memory_paused = False
        self._unpause_reading()

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None and not self._closing:
            self._reading_paused = True
            self.transport.pause_reading()

    def _unpause_reading(self) -> None:
        if (
            self._reading_paused
            and self._task is None
            and not self._window_full
            and not self._memory_paused
            and not self._closing
        ):
            self._reading_paused = False
            if self.transport is not None:
                self.transport.resume_reading()
