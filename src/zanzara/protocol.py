"""The sans-I/O MQTT server connection: bytes in, validated packets out, bytes to send.

Everything that is a rule of one *connection* lives here: CONNECT first and
only once [MQTT-3.1.0-1, MQTT-3.1.0-2], topic name validation, inbound topic
aliases, the inbound receive maximum, what may be sent to this client (its
maximum packet size, whether it wants reason strings), the encoding of every
outgoing PUBLISH with its topic alias (:class:`PublishEncoder` shares one
encoding among a fan-out's subscribers), and the single place where a
:class:`~zanzara.errors.ProtocolError` becomes a CONNACK or DISCONNECT.
Session rules (QoS flows, subscriptions) belong to the core.

Must not import asyncio, sockets or the clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, cast

from .errors import ProtocolError, ProtocolViolation
from .message import Message
from .mqtt import reason_codes
from .mqtt.codec import (
    MAX_PACKET_SIZE,
    Reader,
    encode,
    encode_properties,
    encode_publish,
    encode_publish_template,
)
from .mqtt.enums import PacketType, ProtocolVersion, ReasonCode
from .mqtt.packets import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    Subscribe,
)
from .mqtt.properties import EMPTY_PROPERTIES, Properties
from .mqtt.topics import MAX_TOPIC_LENGTH, validate_topic_name
from .throttle import TokenBucket

__all__ = [
    "ConnectionPhase",
    "Event",
    "Hold",
    "PubAcks",
    "PublishEncoder",
    "ServerProtocol",
    "encode_one",
    "hop_properties",
]

logger = logging.getLogger(__name__)

V5 = ProtocolVersion.MQTT5


@dataclass(slots=True)
class PubAcks:
    """PUBACKs read together, in order: handled as one (see :meth:`ServerProtocol.receive_data`)."""

    packet_type = PacketType.PUBACK
    packets: list[PubAck]


@dataclass(slots=True, frozen=True)
class Hold:
    """Handle nothing after this before ``until`` (the clock of :meth:`ServerProtocol.receive_data`).

    The client is over ``max_publish_rate``: the PUBLISH that follows waits
    until the rate has paid for it.  The non-normative comment of MQTT 5.0
    section 3.1.4 suggests limiting reading against denial of service; waiting
    keeps every packet and their order, and nobody is cut off.
    """

    until: float


# What receive_data returns: packets, runs of PUBACK, and holds for the connection's clock.
Event = Packet | PubAcks | Hold


class ConnectionPhase(Enum):
    """Where a connection is: what it may receive next, and whether anything more is sent."""

    AWAIT_CONNECT = "await_connect"  # nothing received yet
    CONNECTING = "connecting"  # CONNECT received, CONNACK not sent yet
    CONNECTED = "connected"
    CLOSED = "closed"  # failed, disconnected or closed by us: input is discarded


class ServerProtocol:
    """One client connection, seen from the server."""

    # Slots, not a __dict__: CPython 3.11 specializes attribute access only for instances with
    # at most 30 dict keys, and this one is at 31; send_publish reads them once per delivery.
    __slots__ = (
        "_aliases_in",
        "_aliases_out",
        "_out",
        "_pause_at",
        "_publish_bucket",
        "_short_topic",
        "_unacked_in",
        "auth_awaited",
        "auth_method",
        "bytes_received",
        "bytes_sent",
        "client_max_packet_size",
        "client_receive_maximum",
        "client_topic_alias_maximum",
        "deferred_error",
        "disconnect_over_receive_maximum",
        "error",
        "exceeded_receive_maximum",
        "keep_alive_window",
        "last_heard",
        "max_qos",
        "max_topic_length",
        "max_topic_levels",
        "phase",
        "problem_information",
        "publishes_received",
        "publishes_sent",
        "reader",
        "receive_maximum",
        "topic_alias_maximum",
        "version",
    )

    def __init__(
        self,
        *,
        max_packet_size: int = MAX_PACKET_SIZE,
        receive_maximum: int = 65535,
        topic_alias_maximum: int = 0,
        max_topic_levels: int = 128,
        max_topic_length: int = MAX_TOPIC_LENGTH,
        max_qos: int = 2,
        disconnect_over_receive_maximum: bool = False,
        max_publish_rate: float = 0.0,
    ) -> None:
        self.reader = Reader(role="server", max_packet_size=max_packet_size)
        self.phase = ConnectionPhase.AWAIT_CONNECT
        self.version: ProtocolVersion = ProtocolVersion.MQTT311
        self.receive_maximum = receive_maximum
        self.disconnect_over_receive_maximum = disconnect_over_receive_maximum
        # Unanswered QoS 1/2 PUBLISH count at which the connection stops reading (see inbound_full).
        self._pause_at = receive_maximum
        # The client had more than receive_maximum of them at once (counted, logged once).
        self.exceeded_receive_maximum = False
        self.topic_alias_maximum = topic_alias_maximum
        self.max_topic_levels = max_topic_levels
        self.max_topic_length = max_topic_length
        # Topics of up to this many characters are within max_topic_length
        # whatever they hold (4 bytes per code point at most): no encoding needed.
        self._short_topic = max_topic_length // 4
        self.max_qos = max_qos
        # What the client told us in CONNECT (MQTT 5 defaults otherwise).
        self.client_max_packet_size = MAX_PACKET_SIZE
        self.client_receive_maximum = 65535
        self.client_topic_alias_maximum = 0
        self.problem_information = True
        # The Authentication Method of the CONNECT (MQTT 5 enhanced authentication), and
        # whether the server sent AUTH 0x18 and the client's AUTH 0x18 has not come yet.
        self.auth_method: str | None = None
        self.auth_awaited = False
        self.error: ProtocolError | None = None
        self.deferred_error: ProtocolError | None = None
        # Keep alive (section 3.1.2.10): the silence allowed, and when the client was last heard.
        self.keep_alive_window = 0.0  # 0: no keep alive
        self.last_heard = 0.0
        self._aliases_in: dict[int, str] = {}
        self._aliases_out: dict[str, int] = {}
        self._unacked_in: set[int] = set()
        self._out: list[bytes] = []
        # max_publish_rate (0: none): PUBLISH over it are preceded by a Hold.
        self._publish_bucket = TokenBucket(max_publish_rate, 0.0) if max_publish_rate else None
        # Traffic of this connection (the admin API shows it per client).
        self.publishes_received = 0
        self.publishes_sent = 0
        self.bytes_received = 0
        self.bytes_sent = 0  # counted by the transport as it writes (the size is known there)

    # -- input ------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float | None = None) -> list[Event]:
        """Feed bytes (that came at ``now``); return the complete, valid packets in order.

        ``now`` (any monotonic clock; the last :meth:`heard` time when None)
        counts as hearing from the client, and times ``max_publish_rate``: a
        PUBLISH over the rate comes after a :class:`Hold`.

        PUBACKs that come one after another (a subscriber answering a window of
        messages in one write) come out as one :class:`PubAcks`, to be handled
        as one: the same per packet, one refill of the window.

        On a protocol error the packets before it are returned and the error
        is kept in :attr:`deferred_error`: the caller handles those packets
        first, then calls :meth:`fail` (so their acknowledgements precede the
        DISCONNECT).  Nothing after the error is parsed.
        """
        if self.phase is ConnectionPhase.CLOSED or self.deferred_error is not None:
            return []
        if now is not None:
            self.last_heard = now
        self.bytes_received += len(data)
        self.reader.feed(data)
        packets: list[Event] = []
        try:
            for packet in self.reader.read_packets():
                if type(packet) is Publish:
                    publish = self._check_publish(packet)
                    self.publishes_received += 1
                    bucket = self._publish_bucket
                    if bucket is not None and (wait := bucket.take(1, self.last_heard)):
                        packets.append(Hold(self.last_heard + wait))
                    packets.append(publish)
                    continue
                checked = self._check(packet)
                if checked is None:
                    continue
                if type(checked) is PubAck and packets:
                    last = packets[-1]
                    if type(last) is PubAcks:
                        last.packets.append(checked)
                        continue
                    if type(last) is PubAck:
                        packets[-1] = PubAcks([last, checked])
                        continue
                packets.append(checked)
        except ProtocolError as exc:
            self.deferred_error = exc
        return packets

    def _check_publish(self, packet: Publish) -> Publish:
        if self.phase is not ConnectionPhase.CONNECTED:
            if self.phase is ConnectionPhase.AWAIT_CONNECT:
                raise ProtocolViolation("PUBLISH before CONNECT")  # [MQTT-3.1.0-1]
            if self.auth_method:
                self._check_authenticating(packet)
        props = packet.properties
        if props is not EMPTY_PROPERTIES:
            if props.subscription_identifiers:
                # [MQTT-3.3.4-6] a client must not send a Subscription Identifier.
                raise ProtocolViolation("PUBLISH from a client carries a subscription identifier")
            if props.topic_alias is not None:
                packet = self._resolve_alias(packet, props.topic_alias)
        topic = packet.topic
        if (
            not topic
            or "+" in topic
            or "#" in topic
            or len(topic) > self._short_topic
            or topic.count("/") >= self.max_topic_levels
        ):
            # [MQTT-3.3.2-2], [MQTT-4.7.3-1..3] and our limits: DISCONNECT 0x90 (section 3.14.2.1).
            validate_topic_name(topic, max_levels=self.max_topic_levels, max_length=self.max_topic_length)
        if packet.qos:
            if packet.qos > self.max_qos:
                # [MQTT-3.2.2-11] QoS above Maximum QoS is a protocol error (0x9B).
                raise ProtocolError("QoS not supported", ReasonCode.QOS_NOT_SUPPORTED)
            unacked = self._unacked_in
            if packet.packet_id not in unacked:
                unacked.add(packet.packet_id)  # type: ignore[arg-type]
                if len(unacked) > self.receive_maximum:
                    if self._pause_at > self.receive_maximum:
                        # [MQTT-3.3.4-7] the client sent more unacknowledged QoS>0 PUBLISH than
                        # Receive Maximum; section 4.9 lets the server DISCONNECT 0x93 (a setting).
                        raise ProtocolError("receive maximum exceeded", ReasonCode.RECEIVE_MAXIMUM_EXCEEDED)
                    self.exceeded_receive_maximum = True
        return packet

    @property
    def inbound_full(self) -> bool:
        """As many QoS 1/2 PUBLISH wait for our PUBACK/PUBREC as receive_maximum: stop reading.

        3.1.1 has no Receive Maximum, so a pipelining client broke no rule, and many v5
        clients overrun it: pausing lets TCP slow them, nothing is refused.  Counted up
        to the PUBREC, not the PUBCOMP, or a paused connection could never read the
        PUBREL that ends the exchange.
        """
        return len(self._unacked_in) >= self._pause_at

    def _resolve_alias(self, packet: Publish, alias: int) -> Publish:
        # [MQTT-3.3.2-9], [MQTT-3.3.2-10]: alias 0 or above our maximum is invalid.
        if alias > self.topic_alias_maximum:
            raise ProtocolError("topic alias out of range", ReasonCode.TOPIC_ALIAS_INVALID)
        props = packet.properties.without("topic_alias")
        if packet.topic:
            self._aliases_in[alias] = packet.topic
            return replace(packet, properties=props)
        topic = self._aliases_in.get(alias)
        if topic is None:
            raise ProtocolViolation(f"topic alias {alias} was never set")
        return replace(packet, topic=topic, properties=props)

    def _check(self, packet: Packet) -> Packet | None:
        phase = self.phase
        if type(packet) is Connect:
            if phase is not ConnectionPhase.AWAIT_CONNECT:
                raise ProtocolViolation("second CONNECT")  # [MQTT-3.1.0-2]
            self._accept_connect(packet)
            return packet
        if phase is ConnectionPhase.AWAIT_CONNECT:
            raise ProtocolViolation("first packet is not CONNECT")  # [MQTT-3.1.0-1]
        if type(packet) is Subscribe and len(packet.properties.subscription_identifiers) > 1:
            raise ProtocolViolation("more than one subscription identifier")  # section 3.8.2.1.2
        if type(packet) is Auth:
            self._check_auth(packet)
        elif phase is ConnectionPhase.CONNECTING and self.auth_method:
            self._check_authenticating(packet)
        return packet

    def _check_authenticating(self, packet: Packet) -> None:
        if type(packet) is not Disconnect:
            # [MQTT-3.1.2-30] with an Authentication Method, only AUTH or DISCONNECT before CONNACK.
            raise ProtocolViolation(f"{type(packet).__name__} before authentication completed")

    def _check_auth(self, packet: Auth) -> None:
        """The rules of MQTT 5 section 4.12 on which AUTH a client may send when."""
        if not self.auth_method:
            raise ProtocolViolation("AUTH without an authentication method")  # [MQTT-4.12.0-7]
        if packet.properties.authentication_method != self.auth_method:
            # [MQTT-4.12.1-1] and 3.15.2.2.2: the method of the CONNECT, in every AUTH.
            raise ProtocolViolation("AUTH with another authentication method")
        code = packet.reason_code
        if code == ReasonCode.CONTINUE_AUTHENTICATION:
            if not self.auth_awaited:
                # [MQTT-4.12.0-3] the client continues only in answer to the server's AUTH 0x18.
                raise ProtocolViolation("AUTH 0x18 that answers nothing")
            self.auth_awaited = False
        elif code == ReasonCode.RE_AUTHENTICATE:
            if self.phase is not ConnectionPhase.CONNECTED or self.auth_awaited:
                # [MQTT-4.12.1-1] re-authentication starts after CONNACK, one at a time.
                raise ProtocolViolation("AUTH 0x19 before CONNACK or during an authentication")
        else:
            # 3.15.2.1: Success (0x00) is the server's to send.
            raise ProtocolViolation("AUTH 0x00 from a client")

    def _accept_connect(self, packet: Connect) -> None:
        self.version = packet.protocol_version
        self.phase = ConnectionPhase.CONNECTING
        props = packet.properties
        self.auth_method = props.authentication_method
        if props.authentication_data is not None and self.auth_method is None:
            # 3.1.2.11.10: Authentication Data without an Authentication Method is a Protocol Error.
            raise ProtocolViolation("authentication data without an authentication method")
        if self.version is V5 and self.disconnect_over_receive_maximum:
            # Counted as the spec counts (until PUBCOMP), enforced by DISCONNECT, never paused.
            self._pause_at = 1 << 31
        if self.version is V5:
            if props.maximum_packet_size is not None:
                self.client_max_packet_size = props.maximum_packet_size
            if props.receive_maximum is not None:
                self.client_receive_maximum = props.receive_maximum
            if props.topic_alias_maximum:
                self.client_topic_alias_maximum = props.topic_alias_maximum
            if props.request_problem_information == 0:
                self.problem_information = False

    # -- keep alive -------------------------------------------------------------

    def set_keep_alive(self, seconds: int) -> None:
        """The keep alive the client must keep (its own, or the Server Keep Alive we sent)."""
        # [MQTT-3.1.2-22] the server may close after one and a half times the keep alive.
        self.keep_alive_window = seconds * 1.5

    def heard(self, now: float) -> None:
        """Something came from the client at ``now`` (or we chose not to read it)."""
        self.last_heard = now

    def keep_alive_deadline(self) -> float | None:
        """When the client's silence breaks its keep alive; None without keep alive."""
        return self.last_heard + self.keep_alive_window if self.keep_alive_window else None

    # -- output -----------------------------------------------------------------

    def outgoing_alias(self, topic: str) -> tuple[int, bool] | None:
        """(alias, already known by the client) for ``topic``; None when none is free.

        The first ``topic_alias_maximum`` distinct topics get an alias for the
        life of the connection [MQTT-3.3.2-11]: fan-out topics repeat, and a
        stable mapping needs no eviction bookkeeping.
        """
        alias = self._aliases_out.get(topic)
        if alias is not None:
            return alias, True
        if len(self._aliases_out) >= self.client_topic_alias_maximum:
            return None
        alias = self._aliases_out[topic] = len(self._aliases_out) + 1
        return alias, False

    def forget_alias(self, topic: str) -> None:
        """The PUBLISH that would have taught the client this alias was not sent."""
        if self._aliases_out.get(topic) == len(self._aliases_out):
            del self._aliases_out[topic]

    def send(self, packet: Packet) -> None:
        """Encode ``packet`` for this client, honouring what it accepts."""
        if self.phase is ConnectionPhase.CLOSED and type(packet) not in (Disconnect, ConnAck):
            return
        t = type(packet)
        if t is PubAck or t is PubComp:
            self._unacked_in.discard(packet.packet_id)  # type: ignore[union-attr]
        elif t is PubRec and (
            self._pause_at <= self.receive_maximum or reason_codes.is_failure(packet.reason_code)  # type: ignore[union-attr]
        ):
            # Pausing: the PUBREC answers the PUBLISH (see inbound_full).  Strict: only a
            # PUBREC that ends the flow (0x80 or more, section 4.3.3) frees its place.
            self._unacked_in.discard(packet.packet_id)  # type: ignore[union-attr]
        elif t is Auth:
            self.auth_awaited = packet.reason_code == ReasonCode.CONTINUE_AUTHENTICATION  # type: ignore[union-attr]
        if self.version is V5:
            fitted = self._fit(packet)
            if fitted is None:
                return
            packet = fitted
        data = encode(packet, self.version)
        if len(data) > self.client_max_packet_size:
            # [MQTT-3.1.2-24] a packet without properties to drop can be too large as well.
            logger.debug("dropping %s larger than the client's maximum packet size", t.__name__)
            return
        self._out.append(data)

    def _fit(self, packet: Packet) -> Packet | None:
        props: Properties = getattr(packet, "properties", EMPTY_PROPERTIES)
        if props is EMPTY_PROPERTIES:
            return packet
        t = type(packet)
        if not self.problem_information and t not in (Publish, ConnAck, Disconnect):
            # [MQTT-3.1.2-29] no reason string or user properties unless asked for.
            packet = _without_diagnostics(packet, props)
        if len(encode(packet, self.version)) > self.client_max_packet_size:
            # [MQTT-3.1.2-25] never exceed the client's maximum: drop the optional parts first.
            packet = _without_diagnostics(packet, props)
            if len(encode(packet, self.version)) > self.client_max_packet_size:
                logger.debug("dropping %s larger than the client's maximum packet size", t.__name__)
                return None
        return packet

    def fits(self, packet: Packet) -> bool:
        """Would :meth:`send` send ``packet`` (without its optional parts if need be)?"""
        if self.version is not V5 or self.client_max_packet_size == MAX_PACKET_SIZE:
            return True  # the common case: no limit told, or none that 3.x can tell
        props: Properties = getattr(packet, "properties", EMPTY_PROPERTIES)
        if props is not EMPTY_PROPERTIES:
            packet = _without_diagnostics(packet, props)
        return len(encode(packet, V5)) <= self.client_max_packet_size

    def send_bytes(self, data: bytes) -> bool:
        """Queue an already encoded packet (a PUBLISH shared among subscribers).

        Returns False if the client's maximum packet size forbids it; the
        caller then treats the message as delivered [MQTT-3.1.2-25].
        """
        if len(data) > self.client_max_packet_size:
            return False
        if self.phase is ConnectionPhase.CLOSED:
            # [MQTT-3.14.4-1] nothing after our DISCONNECT: the message is lost with the
            # connection, as if on the wire (QoS 1/2 stay in flight for the next connection).
            return True
        self._out.append(data)
        return True

    def send_publish(
        self, encoder: PublishEncoder, qos: int, retain: bool, sub_ids: tuple[int, ...], packet_id: int = 0
    ) -> int:
        """Queue one recipient's PUBLISH of a fan-out; returns the bytes queued, 0 if not sent.

        Not sent: larger than the client's maximum packet size [MQTT-3.1.2-25] (the caller
        treats the message as delivered); the alias it would have taught is forgotten.
        """
        data = encoder.encode_for(self, qos, retain, sub_ids, packet_id)
        size = len(data)
        # send_bytes inlined: this runs once per delivery of every fan-out.
        if size > self.client_max_packet_size:
            self.forget_alias(encoder.message.topic)
            return 0
        if self.phase is not ConnectionPhase.CLOSED:  # [MQTT-3.14.4-1], as in send_bytes
            self._out.append(data)
        self.publishes_sent += 1
        return size

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
    ) -> int:
        """Queue a PUBLISH for this client alone (a message leaving its queue, a resend)."""
        data = encode_one(message, self, qos, retain, sub_ids, packet_id, now, dup=dup)
        if not self.send_bytes(data):
            self.forget_alias(message.topic)
            return 0
        self.publishes_sent += 1
        return len(data)

    def data_to_send(self) -> list[bytes]:
        out = self._out
        if out:
            self._out = []
        return out

    # -- errors -----------------------------------------------------------------

    def fail(self, exc: ProtocolError) -> None:
        """Answer a protocol error the way the spec says, then discard input.

        The one place where errors become packets: during CONNECT a CONNACK
        with the reason (v5) or the 3.1.1 return code, if there is one;
        afterwards a v5 DISCONNECT with the reason [MQTT-4.13.1-1].
        """
        if self.phase is ConnectionPhase.CLOSED:
            return
        self.error = exc
        code = exc.reason_code
        reason_string = str(exc) if self.problem_information else None
        props = Properties(reason_string=reason_string) if reason_string else EMPTY_PROPERTIES
        if self.phase is not ConnectionPhase.CONNECTED:
            version = self.reader.version or self.version
            self.version = version
            answer = reason_codes.for_connack(code, version)
            if answer is not None:
                self._send_last(ConnAck(reason_code=answer, properties=props), version)
        elif self.version is V5:
            self._send_last(Disconnect(reason_code=reason_codes.for_disconnect(code), properties=props), V5)
        self.phase = ConnectionPhase.CLOSED

    def refuse(self, reason_code: int, reason_string: str | None = None) -> None:
        """Refuse a CONNECT (authentication, client id, ...)."""
        self.fail(ProtocolError(reason_string or ReasonCode(reason_code).name, reason_code))

    def disconnect(self, reason_code: int, reason_string: str | None = None) -> None:
        """Server-initiated DISCONNECT (v5 only sends a packet; section 3.14)."""
        if self.phase is ConnectionPhase.CLOSED:
            return
        if self.version is V5 and self.phase is ConnectionPhase.CONNECTED:
            props = Properties(reason_string=reason_string) if reason_string else EMPTY_PROPERTIES
            self._send_last(Disconnect(reason_code=reason_code, properties=props), V5)
        self.phase = ConnectionPhase.CLOSED

    def _send_last(self, packet: ConnAck | Disconnect, version: ProtocolVersion) -> None:
        """The refusing CONNACK or the DISCONNECT, within the client's Maximum Packet Size.

        [MQTT-3.1.2-24] holds for these too: the reason string goes first, and a
        packet that is still too large is not sent (the connection closes anyway).
        """
        data = encode(packet, version)
        if len(data) > self.client_max_packet_size:
            data = encode(replace(packet, properties=EMPTY_PROPERTIES), version)
            if len(data) > self.client_max_packet_size:
                logger.debug("not sending %s: over the client's maximum packet size", type(packet).__name__)
                return
        self._out.append(data)

    def accept(self, connack: ConnAck) -> None:
        """Send the successful CONNACK and enter the CONNECTED phase."""
        self.send(connack)
        self.phase = ConnectionPhase.CONNECTED


def _without_diagnostics(packet: Packet, props: Properties) -> Packet:
    """``packet`` without its reason string and user properties."""
    same: Any = packet  # every packet with properties has the same ``properties`` field
    return cast(Packet, replace(same, properties=props.without("reason_string", "user_properties")))


def hop_properties(message: Message, sub_ids: tuple[int, ...], now: float) -> Properties:
    """The message's properties for one hop: remaining expiry [MQTT-3.3.2-6], subscription ids."""
    props = message.properties
    expiry = message.remaining_expiry(now)
    if expiry is None and not sub_ids:
        return props
    return Properties(
        payload_format_indicator=props.payload_format_indicator,
        message_expiry_interval=expiry,
        content_type=props.content_type,
        response_topic=props.response_topic,
        correlation_data=props.correlation_data,
        subscription_identifiers=sub_ids,
        user_properties=props.user_properties,
    )


class PublishEncoder:
    """One message's PUBLISH encodings for a fan-out, one per subscriber shape.

    Lives for one message's routing: the shape (protocol family, QoS, retain,
    subscription ids) is encoded once and shared, only the packet id patched.
    A client that accepts topic aliases, or a resend with DUP, gets its own.
    Pure: ``now`` sets the remaining message expiry.
    """

    __slots__ = ("_shapes", "message", "now")

    def __init__(self, message: Message, now: float) -> None:
        self.message = message
        self.now = now
        self._shapes: dict[tuple[bool, int, bool, tuple[int, ...]], tuple[bytes, int]] = {}

    def encode_for(
        self,
        proto: ServerProtocol,
        qos: int,
        retain: bool,
        sub_ids: tuple[int, ...],
        packet_id: int = 0,
        *,
        dup: bool = False,
    ) -> bytes:
        """The PUBLISH bytes for one recipient."""
        v5 = proto.version is V5
        if v5 and (dup or proto.client_topic_alias_maximum):
            return encode_one(self.message, proto, qos, retain, sub_ids, packet_id, self.now, dup=dup)
        key = (v5, qos, retain, sub_ids if v5 else ())
        shape = self._shapes.get(key)
        if shape is None:
            block = None
            if v5:
                props = hop_properties(self.message, sub_ids, self.now)
                if props is not EMPTY_PROPERTIES:
                    block = encode_properties(props, PacketType.PUBLISH)
            message = self.message
            shape = self._shapes[key] = encode_publish_template(
                message.topic, message.payload, qos, retain, block, proto.version
            )
        data, offset = shape
        if not qos:
            return data
        if dup and not v5:
            return encode_one(self.message, proto, qos, retain, sub_ids, packet_id, self.now, dup=dup)
        patched = bytearray(data)
        patched[offset] = packet_id >> 8
        patched[offset + 1] = packet_id & 0xFF
        return bytes(patched)


def encode_one(
    message: Message,
    proto: ServerProtocol,
    qos: int,
    retain: bool,
    sub_ids: tuple[int, ...],
    packet_id: int,
    now: float,
    *,
    dup: bool = False,
) -> bytes:
    """The PUBLISH bytes for a single recipient: a message leaving a queue, a resend, an alias."""
    topic = message.topic
    block = None
    if proto.version is V5:
        props = hop_properties(message, sub_ids, now)
        if proto.client_topic_alias_maximum:
            alias = proto.outgoing_alias(topic)
            if alias is not None:
                # [MQTT-3.3.2-12] once the client knows the alias, the topic can be left empty.
                number, known = alias
                props = replace(props, topic_alias=number)
                if known:
                    topic = ""
        if props is not EMPTY_PROPERTIES:
            block = encode_properties(props, PacketType.PUBLISH)
    return encode_publish(topic, message.payload, qos, retain, dup, packet_id, block, proto.version)
