"""MQTT 5 properties: the typed value object and the table that drives the codec.

``Properties`` holds every property a packet can carry; absent ones are
``None`` (or an empty tuple for the repeatable ones).  ``PROPERTY_SPECS``
says, for each identifier, its wire type, attribute name, in which packets it
may appear (section 2.2.2.2, table 2-4) and whether it may repeat.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from enum import Enum
from typing import Final

from .enums import PacketType, PropertyId

__all__ = ["EMPTY_PROPERTIES", "PROPERTY_SPECS", "WILL", "Properties", "PropertySpec", "WireType"]


class WireType(Enum):
    """How a property's value is encoded, one of the data types of section 1.5 (the value names it)."""

    BYTE = "byte"
    TWO_BYTE = "two-byte integer"
    FOUR_BYTE = "four-byte integer"
    VARINT = "variable byte integer"
    UTF8 = "UTF-8 string"
    BINARY = "binary data"
    UTF8_PAIR = "UTF-8 string pair"


@dataclass(frozen=True, slots=True, kw_only=True)
class Properties:
    """The properties of one packet (or of a will message)."""

    payload_format_indicator: int | None = None
    message_expiry_interval: int | None = None
    content_type: str | None = None
    response_topic: str | None = None
    correlation_data: bytes | None = None
    subscription_identifiers: tuple[int, ...] = ()
    session_expiry_interval: int | None = None
    assigned_client_identifier: str | None = None
    server_keep_alive: int | None = None
    authentication_method: str | None = None
    authentication_data: bytes | None = None
    request_problem_information: int | None = None
    will_delay_interval: int | None = None
    request_response_information: int | None = None
    response_information: str | None = None
    server_reference: str | None = None
    reason_string: str | None = None
    receive_maximum: int | None = None
    topic_alias_maximum: int | None = None
    topic_alias: int | None = None
    maximum_qos: int | None = None
    retain_available: int | None = None
    user_properties: tuple[tuple[str, str], ...] = ()
    maximum_packet_size: int | None = None
    wildcard_subscription_available: int | None = None
    subscription_identifier_available: int | None = None
    shared_subscription_available: int | None = None

    def __bool__(self) -> bool:
        return self is not EMPTY_PROPERTIES and self != EMPTY_PROPERTIES

    def without(self, *names: str) -> Properties:
        """A copy with the named attributes reset to their defaults."""
        changes: dict[str, object] = {}
        for name in names:
            changes[name] = () if name in _TUPLE_FIELDS else None
        return replace(self, **changes)  # type: ignore[arg-type]


EMPTY_PROPERTIES: Final = Properties()
_TUPLE_FIELDS: Final = frozenset({"subscription_identifiers", "user_properties"})
PROPERTY_NAMES: Final = tuple(f.name for f in fields(Properties))

# Pseudo packet type for the will properties inside CONNECT's payload.
WILL: Final = "will"


@dataclass(frozen=True, slots=True)
class PropertySpec:
    """One row of :data:`PROPERTY_SPECS`: a property's identifier, its ``Properties`` attribute,
    its wire type, the packets it may appear in (``WILL``: a will's properties) and whether it
    may repeat."""

    identifier: PropertyId
    attribute: str
    wire_type: WireType
    allowed_in: frozenset[PacketType | str]
    repeatable: bool = False


_P = PacketType
_ACKS = frozenset({_P.PUBACK, _P.PUBREC, _P.PUBREL, _P.PUBCOMP})
_ALL: frozenset[PacketType | str] = frozenset([*PacketType, WILL]) - {_P.PINGREQ, _P.PINGRESP}
_REASON_STRING_IN: frozenset[PacketType | str] = frozenset(
    {_P.CONNACK, _P.SUBACK, _P.UNSUBACK, _P.DISCONNECT, _P.AUTH} | _ACKS
)


def _spec(
    ident: PropertyId, attr: str, wire: WireType, *where: PacketType | str, repeatable: bool = False
) -> tuple[int, PropertySpec]:
    return int(ident), PropertySpec(ident, attr, wire, frozenset(where), repeatable)


_I = PropertyId
_W = WireType
PROPERTY_SPECS: Final[dict[int, PropertySpec]] = dict(
    [
        _spec(_I.PAYLOAD_FORMAT_INDICATOR, "payload_format_indicator", _W.BYTE, _P.PUBLISH, WILL),
        _spec(_I.MESSAGE_EXPIRY_INTERVAL, "message_expiry_interval", _W.FOUR_BYTE, _P.PUBLISH, WILL),
        _spec(_I.CONTENT_TYPE, "content_type", _W.UTF8, _P.PUBLISH, WILL),
        _spec(_I.RESPONSE_TOPIC, "response_topic", _W.UTF8, _P.PUBLISH, WILL),
        _spec(_I.CORRELATION_DATA, "correlation_data", _W.BINARY, _P.PUBLISH, WILL),
        # [MQTT-3.3.4-4] a PUBLISH to a client may carry several subscription identifiers.
        _spec(
            _I.SUBSCRIPTION_IDENTIFIER,
            "subscription_identifiers",
            _W.VARINT,
            _P.PUBLISH,
            _P.SUBSCRIBE,
            repeatable=True,
        ),
        _spec(
            _I.SESSION_EXPIRY_INTERVAL,
            "session_expiry_interval",
            _W.FOUR_BYTE,
            _P.CONNECT,
            _P.CONNACK,
            _P.DISCONNECT,
        ),
        _spec(_I.ASSIGNED_CLIENT_IDENTIFIER, "assigned_client_identifier", _W.UTF8, _P.CONNACK),
        _spec(_I.SERVER_KEEP_ALIVE, "server_keep_alive", _W.TWO_BYTE, _P.CONNACK),
        _spec(_I.AUTHENTICATION_METHOD, "authentication_method", _W.UTF8, _P.CONNECT, _P.CONNACK, _P.AUTH),
        _spec(_I.AUTHENTICATION_DATA, "authentication_data", _W.BINARY, _P.CONNECT, _P.CONNACK, _P.AUTH),
        _spec(_I.REQUEST_PROBLEM_INFORMATION, "request_problem_information", _W.BYTE, _P.CONNECT),
        _spec(_I.WILL_DELAY_INTERVAL, "will_delay_interval", _W.FOUR_BYTE, WILL),
        _spec(_I.REQUEST_RESPONSE_INFORMATION, "request_response_information", _W.BYTE, _P.CONNECT),
        _spec(_I.RESPONSE_INFORMATION, "response_information", _W.UTF8, _P.CONNACK),
        _spec(_I.SERVER_REFERENCE, "server_reference", _W.UTF8, _P.CONNACK, _P.DISCONNECT),
        _spec(_I.REASON_STRING, "reason_string", _W.UTF8, *_REASON_STRING_IN),
        _spec(_I.RECEIVE_MAXIMUM, "receive_maximum", _W.TWO_BYTE, _P.CONNECT, _P.CONNACK),
        _spec(_I.TOPIC_ALIAS_MAXIMUM, "topic_alias_maximum", _W.TWO_BYTE, _P.CONNECT, _P.CONNACK),
        _spec(_I.TOPIC_ALIAS, "topic_alias", _W.TWO_BYTE, _P.PUBLISH),
        _spec(_I.MAXIMUM_QOS, "maximum_qos", _W.BYTE, _P.CONNACK),
        _spec(_I.RETAIN_AVAILABLE, "retain_available", _W.BYTE, _P.CONNACK),
        _spec(_I.USER_PROPERTY, "user_properties", _W.UTF8_PAIR, *_ALL, repeatable=True),
        _spec(_I.MAXIMUM_PACKET_SIZE, "maximum_packet_size", _W.FOUR_BYTE, _P.CONNECT, _P.CONNACK),
        _spec(_I.WILDCARD_SUBSCRIPTION_AVAILABLE, "wildcard_subscription_available", _W.BYTE, _P.CONNACK),
        _spec(_I.SUBSCRIPTION_IDENTIFIER_AVAILABLE, "subscription_identifier_available", _W.BYTE, _P.CONNACK),
        _spec(_I.SHARED_SUBSCRIPTION_AVAILABLE, "shared_subscription_available", _W.BYTE, _P.CONNACK),
    ]
)
