"""What the codec tests share: the protocol versions, the two reader roles, and bytes by hand.

``h`` reads hex with any whitespace, so a packet can be laid out field by field; ``frame`` puts a
fixed header over a short body; ``mqtt_str`` writes a UTF-8 Encoded String (MQTT 5.0 section 1.5.4)
without checking it, so a test can write an ill-formed one.
"""

from __future__ import annotations

from typing import Literal

from zanzara.mqtt.enums import ProtocolVersion

V31 = ProtocolVersion.MQTT31
V311 = ProtocolVersion.MQTT311
V5 = ProtocolVersion.MQTT5
Role = Literal["server", "client"]


def h(text: str) -> bytes:
    """Hex with any whitespace, as the bytes are laid out field by field."""
    return bytes.fromhex(text)


def frame(first: int, body: bytes) -> bytes:
    """A packet: the first byte of its fixed header, a one-byte Remaining Length, ``body``."""
    assert len(body) < 128
    return bytes((first, len(body))) + body


def mqtt_str(text: bytes) -> bytes:
    """``text`` prefixed with its length as a two-byte integer."""
    return len(text).to_bytes(2, "big") + text
