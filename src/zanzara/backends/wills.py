"""A session's will as bytes: the durable back-ends store it as one value."""

from __future__ import annotations

import struct

from ..mqtt.codec import decode_properties, encode_properties
from ..mqtt.packets import Will
from ..mqtt.properties import EMPTY_PROPERTIES, WILL

__all__ = ["decode_will", "encode_will"]

_HEAD = struct.Struct("!BHI")  # flags (qos | retain << 2), topic length, payload length


def encode_will(will: Will) -> bytes:
    topic = will.topic.encode()
    head = _HEAD.pack(will.qos | (will.retain << 2), len(topic), len(will.payload))
    props = b"" if will.properties is EMPTY_PROPERTIES else encode_properties(will.properties, WILL)
    return head + topic + will.payload + props


def decode_will(data: bytes) -> Will:
    flags, topic_len, payload_len = _HEAD.unpack_from(data)
    p = _HEAD.size
    topic = data[p : p + topic_len].decode()
    p += topic_len
    payload = data[p : p + payload_len]
    p += payload_len
    props = decode_properties(data[p:], WILL) if p < len(data) else EMPTY_PROPERTIES
    return Will(topic=topic, payload=payload, qos=flags & 3, retain=bool(flags & 4), properties=props)
