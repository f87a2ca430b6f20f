"""One dataclass per MQTT control packet, treated as an immutable value.

The packets of a message's flow (PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP) are
not ``frozen``: they are built once or twice per message, and a frozen
dataclass's ``__init__`` (``object.__setattr__`` per field) costs about three
times a plain one's.  Nothing mutates a packet; the others stay frozen.

The same classes serve 3.1, 3.1.1 and 5.0: fields that only exist in 5.0
(properties, most reason codes) keep their defaults for older versions, and
the codec ignores or rejects them according to the version it speaks.
Packets validate only what does not depend on the protocol version; the codec
and the protocol state machine check the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from .enums import PacketType, ProtocolVersion, RetainHandling
from .properties import EMPTY_PROPERTIES, Properties

__all__ = [
    "Auth",
    "ConnAck",
    "Connect",
    "Disconnect",
    "Packet",
    "PingReq",
    "PingResp",
    "PubAck",
    "PubComp",
    "PubRec",
    "PubRel",
    "Publish",
    "SubAck",
    "Subscribe",
    "Subscription",
    "UnsubAck",
    "Unsubscribe",
    "Will",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Will:
    """The will message carried in CONNECT section 3.1.2.5."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties = EMPTY_PROPERTIES


@dataclass(frozen=True, slots=True, kw_only=True)
class Connect:
    """CONNECT section 3.1: the client's first packet: its protocol version, session and credentials."""

    packet_type = PacketType.CONNECT

    protocol_version: ProtocolVersion = ProtocolVersion.MQTT311
    # "MQTT" for 3.1.1 and 5.0, "MQIsdp" for 3.1; the codec checks it matches the version.
    protocol_name: str = "MQTT"
    clean_start: bool = True
    keep_alive: int = 0
    client_id: str = ""
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    properties: Properties = EMPTY_PROPERTIES


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnAck:
    """CONNACK section 3.2: the server's answer to CONNECT, accepting the connection or refusing it."""

    packet_type = PacketType.CONNACK

    session_present: bool = False
    # 3.1/3.1.1: the connect return code 0-5; 5.0: a ReasonCode value.
    reason_code: int = 0
    properties: Properties = EMPTY_PROPERTIES


@dataclass(slots=True, kw_only=True)
class Publish:
    """PUBLISH section 3.3: one application message, in either direction."""

    packet_type = PacketType.PUBLISH

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    # None for QoS 0 [MQTT-2.2.1-2]; 1..65535 otherwise.
    packet_id: int | None = None
    properties: Properties = EMPTY_PROPERTIES


@dataclass(slots=True, kw_only=True)
class PubAck:
    """PUBACK section 3.4: the receiver's acknowledgement of a QoS 1 PUBLISH."""

    packet_type = PacketType.PUBACK

    packet_id: int
    reason_code: int = 0
    properties: Properties = EMPTY_PROPERTIES


@dataclass(slots=True, kw_only=True)
class PubRec:
    """PUBREC section 3.5: the receiver's first answer to a QoS 2 PUBLISH (received, or refused in 5.0)."""

    packet_type = PacketType.PUBREC

    packet_id: int
    reason_code: int = 0
    properties: Properties = EMPTY_PROPERTIES


@dataclass(slots=True, kw_only=True)
class PubRel:
    """PUBREL section 3.6: the sender's answer to PUBREC, which lets the receiver release the packet id."""

    packet_type = PacketType.PUBREL

    packet_id: int
    reason_code: int = 0
    properties: Properties = EMPTY_PROPERTIES


@dataclass(slots=True, kw_only=True)
class PubComp:
    """PUBCOMP section 3.7: the receiver's answer to PUBREL, the end of the QoS 2 flow."""

    packet_type = PacketType.PUBCOMP

    packet_id: int
    reason_code: int = 0
    properties: Properties = EMPTY_PROPERTIES


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscription:
    """One topic filter and its options in SUBSCRIBE section 3.8.3.1."""

    topic_filter: str
    qos: int = 0  # the maximum QoS the client wants
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: RetainHandling = RetainHandling.SEND_ON_SUBSCRIBE


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscribe:
    """SUBSCRIBE section 3.8: the client asks for one or more subscriptions."""

    packet_type = PacketType.SUBSCRIBE

    packet_id: int
    subscriptions: tuple[Subscription, ...]
    properties: Properties = EMPTY_PROPERTIES


@dataclass(frozen=True, slots=True, kw_only=True)
class SubAck:
    """SUBACK section 3.9: the server's answer to SUBSCRIBE, one code per subscription in its order."""

    packet_type = PacketType.SUBACK

    packet_id: int
    # One per subscription: granted QoS 0-2 or a failure code (0x80 in 3.1.1).
    reason_codes: tuple[int, ...]
    properties: Properties = EMPTY_PROPERTIES


@dataclass(frozen=True, slots=True, kw_only=True)
class Unsubscribe:
    """UNSUBSCRIBE section 3.10: the client removes one or more subscriptions."""

    packet_type = PacketType.UNSUBSCRIBE

    packet_id: int
    topic_filters: tuple[str, ...]
    properties: Properties = EMPTY_PROPERTIES


@dataclass(frozen=True, slots=True, kw_only=True)
class UnsubAck:
    """UNSUBACK section 3.11: the server's answer to UNSUBSCRIBE."""

    packet_type = PacketType.UNSUBACK

    packet_id: int
    # 5.0 only: one reason code per topic filter. Empty (and not encoded) for 3.x.
    reason_codes: tuple[int, ...] = ()
    properties: Properties = EMPTY_PROPERTIES


@dataclass(frozen=True, slots=True, kw_only=True)
class PingReq:
    """PINGREQ section 3.12: the client's keep-alive probe; it carries nothing."""

    packet_type = PacketType.PINGREQ


@dataclass(frozen=True, slots=True, kw_only=True)
class PingResp:
    """PINGRESP section 3.13: the server's answer to PINGREQ; it carries nothing."""

    packet_type = PacketType.PINGRESP


@dataclass(frozen=True, slots=True, kw_only=True)
class Disconnect:
    """DISCONNECT section 3.14: the end of a connection (either side's in 5.0, the client's only in 3.x)."""

    packet_type = PacketType.DISCONNECT

    reason_code: int = 0
    properties: Properties = EMPTY_PROPERTIES


@dataclass(frozen=True, slots=True, kw_only=True)
class Auth:
    """MQTT 5 only (section 3.15)."""

    packet_type = PacketType.AUTH

    reason_code: int = 0
    properties: Properties = EMPTY_PROPERTIES


Packet = (
    Connect
    | ConnAck
    | Publish
    | PubAck
    | PubRec
    | PubRel
    | PubComp
    | Subscribe
    | SubAck
    | Unsubscribe
    | UnsubAck
    | PingReq
    | PingResp
    | Disconnect
    | Auth
)
