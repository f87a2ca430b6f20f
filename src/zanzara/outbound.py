"""Encoding one message for its many recipients.

A :class:`PublishEncoder` lives for one message's fan-out.  It encodes the
PUBLISH once per distinct shape (protocol family, QoS, retain flag,
subscription identifiers) and shares those bytes among every subscriber of
that shape, patching only the packet id.  A client that accepts topic
aliases, or a resend with DUP, gets an encoding of its own.

Pure: the caller passes ``now`` for the remaining message expiry.
"""

from __future__ import annotations

from dataclasses import replace

from .message import Message
from .mqtt.codec import encode_properties, encode_publish, encode_publish_template
from .mqtt.enums import PacketType, ProtocolVersion
from .mqtt.properties import EMPTY_PROPERTIES, Properties
from .protocol import ServerProtocol

__all__ = ["PublishEncoder", "encode_one", "hop_properties"]

V5 = ProtocolVersion.MQTT5


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
