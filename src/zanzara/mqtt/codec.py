"""Encode and decode MQTT 3.1, 3.1.1 and 5.0 packets; pure and incremental.

:class:`Reader` takes bytes as they arrive (partial or coalesced) and yields
complete packets; any violation of the wire format raises a
:class:`~zanzara.errors.ProtocolError` subclass carrying the reason code, and
the reader then discards everything that follows (the connection is over).
``encode`` turns a packet into bytes for a given protocol version;
``encode_publish_template`` serves fan-out, where one encoding is shared by
many subscribers and only the packet id is patched.

PUBLISH and the four-byte acknowledgements are the hot path: they are parsed
with offsets straight out of the receive buffer, and the buffer is trimmed
once per batch, not once per packet.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, Literal

from ..errors import MalformedPacket, PacketTooLarge, ProtocolViolation, UnsupportedProtocolVersion
from . import reason_codes as rc
from .enums import PacketType, ProtocolVersion, RetainHandling
from .packets import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
    Will,
)
from .properties import EMPTY_PROPERTIES, PROPERTY_SPECS, WILL, Properties, WireType

__all__ = [
    "MAX_PACKET_SIZE",
    "Reader",
    "decode_properties",
    "encode",
    "encode_properties",
    "encode_publish",
    "encode_publish_template",
    "encode_varint",
]

MAX_REMAINING_LENGTH: Final = 268_435_455
MAX_PACKET_SIZE: Final = MAX_REMAINING_LENGTH + 5

V31 = ProtocolVersion.MQTT31
V311 = ProtocolVersion.MQTT311
V5 = ProtocolVersion.MQTT5
_PT = PacketType

# Which direction each packet type travels (section 2.1.2, table 2-1).
_FROM_CLIENT: Final = frozenset({1, 3, 4, 5, 6, 7, 8, 10, 12, 14, 15})
_FROM_SERVER: Final = frozenset({2, 3, 4, 5, 6, 7, 9, 11, 13, 14, 15})
# [MQTT-2.1.3-1] reserved flag bits of the fixed header, per packet type (PUBLISH excepted).
_FLAGS: Final = {1: 0, 2: 0, 4: 0, 5: 0, 6: 2, 7: 0, 8: 2, 9: 0, 10: 2, 11: 0, 12: 0, 13: 0, 14: 0, 15: 0}

_BOOLEAN_PROPERTIES: Final = (
    "payload_format_indicator",
    "request_problem_information",
    "request_response_information",
    "maximum_qos",
    "retain_available",
    "wildcard_subscription_available",
    "subscription_identifier_available",
    "shared_subscription_available",
)
_NONZERO_PROPERTIES: Final = ("receive_maximum", "maximum_packet_size", "topic_alias")
_PROTOCOL_NAMES: Final = {V31: "MQIsdp", V311: "MQTT", V5: "MQTT"}


# -- primitives ------------------------------------------------------------------


def encode_varint(value: int) -> bytes:
    """Variable Byte Integer (section 1.5.5)."""
    if value < 128:
        return bytes((value,))
    if value > MAX_REMAINING_LENGTH:
        raise ValueError(f"{value} does not fit in a variable byte integer")  # at most 4 bytes
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _varint(buf: bytearray | bytes, p: int, end: int) -> tuple[int, int]:
    value = 0
    shift = 0
    start = p
    while True:
        if p >= end:
            raise MalformedPacket("truncated variable byte integer")
        b = buf[p]
        p += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            if b == 0 and p - start > 1:
                raise MalformedPacket("variable byte integer not minimally encoded")  # [MQTT-1.5.5-1]
            return value, p
        shift += 7
        if shift > 21:
            raise MalformedPacket("variable byte integer longer than 4 bytes")


def _utf8(buf: bytearray | bytes, p: int, end: int) -> tuple[str, int]:
    if p + 2 > end:
        raise MalformedPacket("truncated string length")
    stop = p + 2 + (buf[p] << 8 | buf[p + 1])
    if stop > end:
        raise MalformedPacket("string longer than the packet")
    try:
        text = buf[p + 2 : stop].decode("utf-8")  # strict: ill-formed UTF-8 and surrogates fail
    except UnicodeDecodeError as exc:
        raise MalformedPacket(f"invalid UTF-8: {exc.reason}") from None  # [MQTT-1.5.4-1]
    if "\x00" in text:
        raise MalformedPacket("U+0000 in a UTF-8 string")  # [MQTT-1.5.4-2]
    return text, stop


def _binary(buf: bytearray | bytes, p: int, end: int) -> tuple[bytes, int]:
    if p + 2 > end:
        raise MalformedPacket("truncated binary length")
    stop = p + 2 + (buf[p] << 8 | buf[p + 1])
    if stop > end:
        raise MalformedPacket("binary data longer than the packet")
    return bytes(buf[p + 2 : stop]), stop


def _u16(buf: bytearray | bytes, p: int, end: int) -> int:
    if p + 2 > end:
        raise MalformedPacket("truncated two-byte integer")
    return buf[p] << 8 | buf[p + 1]


def _str_bytes(text: str) -> bytes:
    data = text.encode("utf-8")
    if len(data) > 65535:
        raise ValueError("string longer than 65535 bytes")
    return len(data).to_bytes(2, "big") + data


def _bin_bytes(data: bytes) -> bytes:
    if len(data) > 65535:
        raise ValueError("binary data longer than 65535 bytes")
    return len(data).to_bytes(2, "big") + data


# -- properties ------------------------------------------------------------------


def _decode_properties(  # noqa: C901 - one flat loop over the property table: the decoder hot path
    buf: bytearray | bytes, p: int, end: int, where: PacketType | str
) -> tuple[Properties, int]:
    length, p = _varint(buf, p, end)
    stop = p + length
    if stop > end:
        raise MalformedPacket("property length beyond the packet")
    if length == 0:
        return EMPTY_PROPERTIES, p
    values: dict[str, object] = {}
    sub_ids: list[int] = []
    users: list[tuple[str, str]] = []
    while p < stop:
        ident, p = _varint(buf, p, stop)
        spec = PROPERTY_SPECS.get(ident)
        if spec is None or where not in spec.allowed_in:
            # Section 2.2.2.2: an identifier not valid for the packet type is malformed.
            raise MalformedPacket(f"property 0x{ident:02x} not allowed in {_where_name(where)}")
        wire = spec.wire_type
        value: object
        if wire is WireType.BYTE:
            if p >= stop:
                raise MalformedPacket("truncated property")
            value = buf[p]
            p += 1
        elif wire is WireType.TWO_BYTE:
            value = _u16(buf, p, stop)
            p += 2
        elif wire is WireType.FOUR_BYTE:
            if p + 4 > stop:
                raise MalformedPacket("truncated property")
            value = int.from_bytes(buf[p : p + 4], "big")
            p += 4
        elif wire is WireType.VARINT:
            value, p = _varint(buf, p, stop)
        elif wire is WireType.UTF8:
            value, p = _utf8(buf, p, stop)
        elif wire is WireType.BINARY:
            value, p = _binary(buf, p, stop)
        else:
            key, p = _utf8(buf, p, stop)
            val, p = _utf8(buf, p, stop)
            users.append((key, val))
            continue
        if spec.repeatable:
            if value == 0:
                raise ProtocolViolation("subscription identifier 0")  # section 3.8.2.1.2
            sub_ids.append(value)  # type: ignore[arg-type]
            continue
        if spec.attribute in values:
            raise ProtocolViolation(f"property {spec.identifier.name} included twice")  # 2.2.2.2
        values[spec.attribute] = value
    if sub_ids:
        values["subscription_identifiers"] = tuple(sub_ids)
    if users:
        values["user_properties"] = tuple(users)
    for name in _BOOLEAN_PROPERTIES:
        v = values.get(name)
        if v is not None and v not in (0, 1):
            raise ProtocolViolation(f"{name} must be 0 or 1")
    for name in _NONZERO_PROPERTIES:
        if values.get(name) == 0:
            # 3.3.4: a Topic Alias of 0 is a Protocol Error with reason code 0x94 (Topic Alias invalid).
            code = 0x94 if name == "topic_alias" else None
            raise ProtocolViolation(f"{name} must not be 0", code)
    return Properties(**values), stop  # type: ignore[arg-type]


def _where_name(where: PacketType | str) -> str:
    return where.name if isinstance(where, PacketType) else "will properties"


_SPECS_IN_ORDER: Final = sorted(PROPERTY_SPECS.values(), key=lambda s: s.identifier)


def encode_properties(properties: Properties, where: PacketType | str) -> bytes:
    """The property block (length prefix included) for ``where`` (a packet type or WILL)."""
    if properties is EMPTY_PROPERTIES:
        return b"\x00"
    out = bytearray()
    for spec in _SPECS_IN_ORDER:
        value = getattr(properties, spec.attribute)
        if value is None or value == ():
            continue
        if where not in spec.allowed_in:
            raise ValueError(f"{spec.attribute} is not allowed in {_where_name(where)}")
        ident = int(spec.identifier)
        wire = spec.wire_type
        if spec.repeatable:
            if wire is WireType.VARINT:
                for v in value:
                    out.append(ident)
                    out += encode_varint(v)
            else:
                for key, val in value:
                    out.append(ident)
                    out += _str_bytes(key)
                    out += _str_bytes(val)
            continue
        out.append(ident)
        if wire is WireType.BYTE:
            out.append(value)
        elif wire is WireType.TWO_BYTE:
            out += value.to_bytes(2, "big")
        elif wire is WireType.FOUR_BYTE:
            out += value.to_bytes(4, "big")
        elif wire is WireType.VARINT:
            out += encode_varint(value)
        elif wire is WireType.UTF8:
            out += _str_bytes(value)
        else:
            out += _bin_bytes(value)
    return encode_varint(len(out)) + bytes(out)


# -- the reader ------------------------------------------------------------------


class Reader:
    """Incremental packet reader for one connection (partial and coalesced reads)."""

    def __init__(
        self,
        *,
        role: Literal["server", "client"] = "server",
        version: ProtocolVersion | None = None,
        max_packet_size: int = MAX_PACKET_SIZE,
    ) -> None:
        self.role = role
        self.version = version
        self.max_packet_size = max_packet_size
        self._buf = bytearray()
        self._failed = False
        self._accepted = _FROM_CLIENT if role == "server" else _FROM_SERVER

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        if not self._failed:
            self._buf += data

    def read_packets(self) -> Iterator[Packet]:  # noqa: C901 - framing and the PUBLISH fast path inlined: the decoder hot path
        """Yield every complete packet in the buffer; raise ProtocolError at a bad one."""
        if self._failed:
            return
        buf = self._buf
        pos = 0
        try:
            while True:
                n = len(buf)
                if n - pos < 2:
                    return
                first = buf[pos]
                # Remaining Length (section 2.1.4): up to four bytes, minimal.
                i = pos + 1
                b = buf[i]
                if b < 0x80:
                    length = b
                    i += 1
                else:
                    length = 0
                    shift = 0
                    while True:
                        if i >= n:
                            return  # length not complete yet
                        b = buf[i]
                        i += 1
                        length |= (b & 0x7F) << shift
                        if b < 0x80:
                            if b == 0:
                                raise MalformedPacket("remaining length not minimally encoded")
                            break
                        shift += 7
                        if shift > 21:
                            raise MalformedPacket("remaining length longer than 4 bytes")
                if i - pos + length > self.max_packet_size:
                    raise PacketTooLarge(f"packet of {i - pos + length} bytes exceeds {self.max_packet_size}")
                end = i + length
                if end > n:
                    return  # wait for the rest
                packet = self._decode(first, buf, i, end)
                pos = end
                yield packet
        except GeneratorExit:
            raise  # the consumer stopped early: keep what it has not read yet
        except BaseException:
            self._failed = True
            raise
        finally:
            if self._failed:
                buf.clear()
            elif pos:
                del buf[:pos]

    def _decode(self, first: int, buf: bytearray, p: int, end: int) -> Packet:  # noqa: C901 - one branch per packet type, PUBLISH first: the decoder hot path
        ptype = first >> 4
        version = self.version
        if ptype == 3:
            if version is None:
                raise ProtocolViolation("PUBLISH before CONNECT")  # [MQTT-3.1.0-1]
            return _decode_publish(first, buf, p, end, version)
        if ptype == 0 or (ptype == 15 and version is not V5 and version is not None):
            raise MalformedPacket(f"reserved packet type {ptype}")
        if ptype not in self._accepted:
            raise ProtocolViolation(
                f"{PacketType(ptype).name} is not sent by a {'client' if self.role == 'server' else 'server'}"
            )
        if first & 0x0F != _FLAGS[ptype]:
            raise MalformedPacket(f"reserved flags of {PacketType(ptype).name} are wrong")  # [MQTT-2.1.3-1]
        if ptype == 1:
            packet = _decode_connect(buf, p, end)
            if self.role == "server":
                self.version = packet.protocol_version
            return packet
        if version is None:
            if self.role == "server":
                raise ProtocolViolation("first packet is not CONNECT")  # [MQTT-3.1.0-1]
            raise ValueError("a client Reader needs a protocol version")
        v5 = version is V5
        if 4 <= ptype <= 7:
            return _decode_ack(ptype, buf, p, end, v5)
        if ptype == 8:
            return _decode_subscribe(buf, p, end, v5)
        if ptype == 10:
            return _decode_unsubscribe(buf, p, end, v5)
        if ptype in {12, 13}:
            if end != p:
                raise MalformedPacket("PINGREQ/PINGRESP with a body")
            return PingReq() if ptype == 12 else PingResp()
        if ptype == 14:
            return _decode_disconnect(buf, p, end, v5)
        if ptype == 15:
            return _decode_auth(buf, p, end)
        if ptype == 2:
            return _decode_connack(buf, p, end, v5)
        if ptype == 9:
            return _decode_suback(buf, p, end, v5)
        return _decode_unsuback(buf, p, end, v5)


def _decode_publish(first: int, buf: bytearray, p: int, end: int, version: ProtocolVersion) -> Publish:
    qos = (first >> 1) & 3
    if qos == 3:
        raise MalformedPacket("PUBLISH with QoS 3")  # [MQTT-3.3.1-4]
    dup = bool(first & 8)
    if dup and not qos:
        raise MalformedPacket("DUP set on a QoS 0 PUBLISH")  # [MQTT-3.3.1-2]
    topic, p = _utf8(buf, p, end)
    packet_id = None
    if qos:
        if p + 2 > end:
            raise MalformedPacket("truncated packet identifier")
        packet_id = buf[p] << 8 | buf[p + 1]
        if packet_id == 0:
            raise MalformedPacket("packet identifier 0")  # [MQTT-2.2.1-3]
        p += 2
    props = EMPTY_PROPERTIES
    if version is V5:
        props, p = _decode_properties(buf, p, end, _PT.PUBLISH)
    return Publish(
        topic=topic,
        payload=bytes(buf[p:end]),
        qos=qos,
        retain=bool(first & 1),
        dup=dup,
        packet_id=packet_id,
        properties=props,
    )


def _decode_connect(buf: bytearray, p: int, end: int) -> Connect:
    name, p = _utf8(buf, p, end)
    if p >= end:
        raise MalformedPacket("truncated CONNECT")
    level = buf[p]
    p += 1
    try:
        version = ProtocolVersion(level)
    except ValueError:
        raise UnsupportedProtocolVersion(f"protocol level {level}") from None  # [MQTT-3.1.2-2]
    if name != _PROTOCOL_NAMES[version]:
        raise UnsupportedProtocolVersion(f"protocol name {name!r} with level {level}")  # [MQTT-3.1.2-1]
    if p + 3 > end:
        raise MalformedPacket("truncated CONNECT")
    flags = buf[p]
    keep_alive = buf[p + 1] << 8 | buf[p + 2]
    p += 3
    if flags & 0x01:
        raise MalformedPacket("CONNECT reserved flag set")  # [MQTT-3.1.2-3]
    will_flag = bool(flags & 0x04)
    will_qos = (flags >> 3) & 3
    will_retain = bool(flags & 0x20)
    has_password = bool(flags & 0x40)
    has_username = bool(flags & 0x80)
    if will_qos == 3:
        raise MalformedPacket("will QoS 3")  # [MQTT-3.1.2-14]
    if not will_flag and (will_qos or will_retain):
        raise MalformedPacket("will QoS/retain without a will")  # [MQTT-3.1.2-11], [MQTT-3.1.2-13]
    if has_password and not has_username and version is not V5:
        raise MalformedPacket("password without user name")  # [MQTT-3.1.2-22] (3.1.1)
    v5 = version is V5
    props = EMPTY_PROPERTIES
    if v5:
        props, p = _decode_properties(buf, p, end, _PT.CONNECT)
    client_id, p = _utf8(buf, p, end)
    will = None
    if will_flag:
        will_props = EMPTY_PROPERTIES
        if v5:
            will_props, p = _decode_properties(buf, p, end, WILL)
        will_topic, p = _utf8(buf, p, end)
        will_payload, p = _binary(buf, p, end)
        will = Will(
            topic=will_topic, payload=will_payload, qos=will_qos, retain=will_retain, properties=will_props
        )
    username = password = None
    if has_username:
        username, p = _utf8(buf, p, end)
    if has_password:
        password, p = _binary(buf, p, end)
    if p != end:
        raise MalformedPacket("bytes left over after CONNECT")
    return Connect(
        protocol_version=version,
        protocol_name=name,
        clean_start=bool(flags & 0x02),
        keep_alive=keep_alive,
        client_id=client_id,
        username=username,
        password=password,
        will=will,
        properties=props,
    )


_AckClass = type[PubAck] | type[PubRec] | type[PubRel] | type[PubComp]
_ACKS: Final[dict[int, _AckClass]] = {4: PubAck, 5: PubRec, 6: PubRel, 7: PubComp}
_ACK_FIRST_BYTE: Final[dict[type, int]] = {PubAck: 0x40, PubRec: 0x50, PubRel: 0x62, PubComp: 0x70}
_ACK_TYPES: Final = {4: _PT.PUBACK, 5: _PT.PUBREC, 6: _PT.PUBREL, 7: _PT.PUBCOMP}


def _decode_ack(ptype: int, buf: bytearray, p: int, end: int, v5: bool) -> PubAck | PubRec | PubRel | PubComp:
    cls = _ACKS[ptype]
    length = end - p
    if length < 2:
        raise MalformedPacket("truncated acknowledgement")
    packet_id = buf[p] << 8 | buf[p + 1]
    if packet_id == 0:
        raise MalformedPacket("packet identifier 0")
    if length == 2:
        return cls(packet_id=packet_id)
    if not v5:
        raise MalformedPacket("acknowledgement longer than 2 bytes")
    code = buf[p + 2]
    if code not in (rc.PUBREL if ptype in (6, 7) else rc.PUBACK):
        raise MalformedPacket(f"reason code 0x{code:02x} not allowed in {_ACK_TYPES[ptype].name}")
    props = EMPTY_PROPERTIES
    if length > 3:
        props, q = _decode_properties(buf, p + 3, end, _ACK_TYPES[ptype])
        if q != end:
            raise MalformedPacket("bytes left over after acknowledgement")
    return cls(packet_id=packet_id, reason_code=code, properties=props)


def _decode_subscribe(buf: bytearray, p: int, end: int, v5: bool) -> Subscribe:
    packet_id = _u16(buf, p, end)
    if packet_id == 0:
        raise MalformedPacket("packet identifier 0")
    p += 2
    props = EMPTY_PROPERTIES
    if v5:
        props, p = _decode_properties(buf, p, end, _PT.SUBSCRIBE)
    subs = []
    while p < end:
        topic_filter, p = _utf8(buf, p, end)
        if p >= end:
            raise MalformedPacket("missing subscription options")
        options = buf[p]
        p += 1
        if v5:
            if options & 0xC0:
                raise MalformedPacket("reserved subscription option bits set")  # [MQTT-3.8.3-5]
        elif options & 0xFC:
            raise MalformedPacket("reserved subscription option bits set")  # [MQTT-3-8.3-4]
        qos = options & 3
        if qos == 3:
            if v5:
                raise ProtocolViolation("subscription QoS 3")  # 3.8.3.1: a Protocol Error in 5.0
            raise MalformedPacket("subscription QoS 3")  # [MQTT-3-8.3-4]
        handling = (options >> 4) & 3
        if handling == 3:
            raise ProtocolViolation("retain handling 3")
        subs.append(
            Subscription(
                topic_filter=topic_filter,
                qos=qos,
                no_local=bool(options & 4),
                retain_as_published=bool(options & 8),
                retain_handling=RetainHandling(handling),
            )
        )
    if not subs:
        raise ProtocolViolation("SUBSCRIBE without a topic filter")  # [MQTT-3.8.3-3]
    return Subscribe(packet_id=packet_id, subscriptions=tuple(subs), properties=props)


def _decode_unsubscribe(buf: bytearray, p: int, end: int, v5: bool) -> Unsubscribe:
    packet_id = _u16(buf, p, end)
    if packet_id == 0:
        raise MalformedPacket("packet identifier 0")
    p += 2
    props = EMPTY_PROPERTIES
    if v5:
        props, p = _decode_properties(buf, p, end, _PT.UNSUBSCRIBE)
    filters = []
    while p < end:
        topic_filter, p = _utf8(buf, p, end)
        filters.append(topic_filter)
    if not filters:
        raise ProtocolViolation("UNSUBSCRIBE without a topic filter")  # [MQTT-3.10.3-2]
    return Unsubscribe(packet_id=packet_id, topic_filters=tuple(filters), properties=props)


def _reason_and_properties(
    buf: bytearray, p: int, end: int, where: PacketType, allowed: frozenset[int]
) -> tuple[int, Properties]:
    if end == p:
        return 0, EMPTY_PROPERTIES
    code = buf[p]
    if code not in allowed:
        raise MalformedPacket(f"reason code 0x{code:02x} not allowed in {where.name}")
    if end == p + 1:
        return code, EMPTY_PROPERTIES
    props, q = _decode_properties(buf, p + 1, end, where)
    if q != end:
        raise MalformedPacket(f"bytes left over after {where.name}")
    return code, props


def _decode_disconnect(buf: bytearray, p: int, end: int, v5: bool) -> Disconnect:
    if not v5:
        if end != p:
            raise MalformedPacket("DISCONNECT with a body")
        return Disconnect()
    code, props = _reason_and_properties(buf, p, end, _PT.DISCONNECT, rc.DISCONNECT)
    return Disconnect(reason_code=code, properties=props)


def _decode_auth(buf: bytearray, p: int, end: int) -> Auth:
    code, props = _reason_and_properties(buf, p, end, _PT.AUTH, rc.AUTH)
    return Auth(reason_code=code, properties=props)


def _decode_connack(buf: bytearray, p: int, end: int, v5: bool) -> ConnAck:
    if end - p < 2:
        raise MalformedPacket("truncated CONNACK")
    flags = buf[p]
    if flags & 0xFE:
        raise MalformedPacket("CONNACK reserved flags set")  # [MQTT-3.2.2-1]
    code = buf[p + 1]
    props = EMPTY_PROPERTIES
    if v5:
        if code not in rc.CONNACK:
            raise MalformedPacket(f"reason code 0x{code:02x} not allowed in CONNACK")
        props, p = _decode_properties(buf, p + 2, end, _PT.CONNACK)
    else:
        if code > 5:
            raise MalformedPacket(f"CONNACK return code {code}")
        p += 2
    if p != end:
        raise MalformedPacket("bytes left over after CONNACK")
    return ConnAck(session_present=bool(flags & 1), reason_code=code, properties=props)


def _decode_suback(buf: bytearray, p: int, end: int, v5: bool) -> SubAck:
    packet_id = _u16(buf, p, end)
    p += 2
    props = EMPTY_PROPERTIES
    if v5:
        props, p = _decode_properties(buf, p, end, _PT.SUBACK)
        allowed = rc.SUBACK
    else:
        allowed = rc.SUBACK_V3
    codes = tuple(buf[p:end])
    for code in codes:
        if code not in allowed:
            raise MalformedPacket(f"reason code 0x{code:02x} not allowed in SUBACK")
    return SubAck(packet_id=packet_id, reason_codes=codes, properties=props)


def _decode_unsuback(buf: bytearray, p: int, end: int, v5: bool) -> UnsubAck:
    packet_id = _u16(buf, p, end)
    p += 2
    if not v5:
        if p != end:
            raise MalformedPacket("bytes left over after UNSUBACK")
        return UnsubAck(packet_id=packet_id)
    props, p = _decode_properties(buf, p, end, _PT.UNSUBACK)
    codes = tuple(buf[p:end])
    for code in codes:
        if code not in rc.UNSUBACK:
            raise MalformedPacket(f"reason code 0x{code:02x} not allowed in UNSUBACK")
    return UnsubAck(packet_id=packet_id, reason_codes=codes, properties=props)


# -- encoding --------------------------------------------------------------------


def _frame(first: int, body: bytes | bytearray) -> bytes:
    n = len(body)
    if n > MAX_REMAINING_LENGTH:
        raise ValueError("packet too large to encode")
    if n < 128:
        return bytes((first, n)) + body
    return bytes((first,)) + encode_varint(n) + body


def encode_publish(
    topic: str,
    payload: bytes,
    qos: int,
    retain: bool,
    dup: bool,
    packet_id: int,
    properties_block: bytes | None,
    version: ProtocolVersion,
) -> bytes:
    """A PUBLISH for one recipient, in one join (a drained queue encodes each message once)."""
    topic_bytes = topic.encode("utf-8")
    n = len(topic_bytes)
    block = (properties_block or b"\x00") if version is V5 else b""
    pid = bytes((packet_id >> 8, packet_id & 0xFF)) if qos else b""
    length = 2 + n + len(pid) + len(block) + len(payload)
    first = 0x30 | (qos << 1) | (1 if retain else 0) | (0x08 if dup and qos else 0)
    fixed = bytes((first, length)) if length < 128 else bytes((first,)) + encode_varint(length)
    return b"".join((fixed, bytes((n >> 8, n & 0xFF)), topic_bytes, pid, block, payload))


def encode_publish_template(
    topic: str,
    payload: bytes,
    qos: int,
    retain: bool,
    properties_block: bytes | None,
    version: ProtocolVersion,
) -> tuple[bytes, int]:
    """A PUBLISH with packet id 0 (placeholder) and the offset of its packet id (-1 at QoS 0)."""
    data = encode_publish(topic, payload, qos, retain, False, 0, properties_block, version)
    if not qos:
        return data, -1
    # The packet id comes right before the properties (5.0) and the payload.
    tail = len(payload) + (len(properties_block or b"\x00") if version is V5 else 0)
    return data, len(data) - tail - 2


def encode(packet: Packet, version: ProtocolVersion) -> bytes:  # noqa: C901 - one branch per packet type, the acks first: the encoder hot path
    """The bytes of ``packet`` in protocol ``version``."""
    v5 = version is V5
    t = type(packet)
    if t is Publish:
        p: Publish = packet  # type: ignore[assignment]
        block = encode_properties(p.properties, _PT.PUBLISH) if v5 else None
        if p.qos and p.packet_id is None:
            raise ValueError("QoS > 0 PUBLISH needs a packet id")
        return encode_publish(p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id or 0, block, version)
    if t in (PubAck, PubRec, PubRel, PubComp):
        a: PubAck = packet  # type: ignore[assignment]
        first = _ACK_FIRST_BYTE[t]
        pid = a.packet_id.to_bytes(2, "big")
        # An equal-but-distinct empty Properties() takes the short forms too (encode depends on value only).
        no_props = a.properties is EMPTY_PROPERTIES or not a.properties
        if not v5 or (a.reason_code == 0 and no_props):
            return bytes((first, 2)) + pid
        if no_props:
            return bytes((first, 3)) + pid + bytes((a.reason_code,))
        where = _PT(first >> 4)
        return _frame(first, pid + bytes((a.reason_code,)) + encode_properties(a.properties, where))
    if t is PingReq:
        return b"\xc0\x00"
    if t is PingResp:
        return b"\xd0\x00"
    if t is Connect:
        return _encode_connect(packet, version)  # type: ignore[arg-type]
    if t is ConnAck:
        c: ConnAck = packet  # type: ignore[assignment]
        # Session Present is 3.1.1's [MQTT-3.2.2-1..3]: in 3.1 the whole first byte is reserved (0).
        body = bytes((1 if c.session_present and version is not V31 else 0, c.reason_code))
        if v5:
            body += encode_properties(c.properties, _PT.CONNACK)
        return _frame(0x20, body)
    if t is Subscribe:
        s: Subscribe = packet  # type: ignore[assignment]
        buf = bytearray(s.packet_id.to_bytes(2, "big"))
        if v5:
            buf += encode_properties(s.properties, _PT.SUBSCRIBE)
        for sub in s.subscriptions:
            buf += _str_bytes(sub.topic_filter)
            options = sub.qos
            if v5:
                options |= (
                    (4 if sub.no_local else 0)
                    | (8 if sub.retain_as_published else 0)
                    | (int(sub.retain_handling) << 4)
                )
            buf.append(options)
        return _frame(0x82, buf)
    if t is SubAck:
        sa: SubAck = packet  # type: ignore[assignment]
        buf = bytearray(sa.packet_id.to_bytes(2, "big"))
        if v5:
            buf += encode_properties(sa.properties, _PT.SUBACK)
            buf += bytes(sa.reason_codes)
        else:
            buf += bytes(rc.for_suback(sa.reason_codes, version))
        return _frame(0x90, buf)
    if t is Unsubscribe:
        u: Unsubscribe = packet  # type: ignore[assignment]
        buf = bytearray(u.packet_id.to_bytes(2, "big"))
        if v5:
            buf += encode_properties(u.properties, _PT.UNSUBSCRIBE)
        for topic_filter in u.topic_filters:
            buf += _str_bytes(topic_filter)
        return _frame(0xA2, buf)
    if t is UnsubAck:
        ua: UnsubAck = packet  # type: ignore[assignment]
        buf = bytearray(ua.packet_id.to_bytes(2, "big"))
        if v5:
            buf += encode_properties(ua.properties, _PT.UNSUBACK)
            buf += bytes(ua.reason_codes)
        return _frame(0xB0, buf)
    if t is Disconnect:
        d: Disconnect = packet  # type: ignore[assignment]
        return _encode_reason(0xE0, d.reason_code, d.properties, _PT.DISCONNECT, v5)
    if t is Auth:
        if not v5:
            raise ValueError("AUTH exists only in MQTT 5")
        au: Auth = packet  # type: ignore[assignment]
        return _encode_reason(0xF0, au.reason_code, au.properties, _PT.AUTH, v5)
    raise TypeError(f"not a packet: {packet!r}")


def _encode_reason(first: int, code: int, props: Properties, where: PacketType, v5: bool) -> bytes:
    no_props = props is EMPTY_PROPERTIES or not props
    if not v5 or (code == 0 and no_props):
        return bytes((first, 0))
    if no_props:
        return bytes((first, 1, code))
    return _frame(first, bytes((code,)) + encode_properties(props, where))


def _encode_connect(c: Connect, version: ProtocolVersion) -> bytes:
    v5 = version is V5
    body = bytearray(_str_bytes(_PROTOCOL_NAMES[version]))
    body.append(int(version))
    will = c.will
    flags = 0x02 if c.clean_start else 0
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
    if c.password is not None:
        flags |= 0x40
    if c.username is not None:
        flags |= 0x80
    body.append(flags)
    body += c.keep_alive.to_bytes(2, "big")
    if v5:
        body += encode_properties(c.properties, _PT.CONNECT)
    body += _str_bytes(c.client_id)
    if will is not None:
        if v5:
            body += encode_properties(will.properties, WILL)
        body += _str_bytes(will.topic)
        body += _bin_bytes(will.payload)
    if c.username is not None:
        body += _str_bytes(c.username)
    if c.password is not None:
        body += _bin_bytes(c.password)
    return _frame(0x10, body)


def decode_properties(data: bytes, where: PacketType | str) -> Properties:
    """Parse a property block produced by :func:`encode_properties` (used by stores)."""
    props, end = _decode_properties(data, 0, len(data), where)
    if end != len(data):
        raise MalformedPacket("bytes left over after the property block")
    return props
