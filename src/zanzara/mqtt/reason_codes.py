"""Reason codes on the wire: which each packet may carry, per protocol version, and how to fit one.

MQTT 5 lists, for every packet, the reason codes it may carry (sections
3.2.2.2, 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1, 3.9.3, 3.11.3, 3.14.2.1, 3.15.2.1);
MQTT 3.1.1 has CONNACK return codes (table 3.1) and SUBACK's 0x80, nothing
else.  Every translation of a code for the wire is here: the codec checks
what it decodes against these sets, and the protocol and the core fit what
they send to them.  Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from .enums import ProtocolVersion, ReasonCode

__all__ = [
    "AUTH",
    "CONNACK",
    "DISCONNECT",
    "PUBACK",
    "PUBREL",
    "SUBACK",
    "SUBACK_V3",
    "UNSUBACK",
    "fit",
    "for_connack",
    "for_disconnect",
    "for_suback",
    "is_failure",
    "packet_id_not_found",
]

V5 = ProtocolVersion.MQTT5

# Reason codes each v5 packet may carry.
CONNACK: Final = frozenset(
    {0x00, *range(0x80, 0x8B), 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F}
)
PUBACK: Final = frozenset({0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99})  # and PUBREC
PUBREL: Final = frozenset({0x00, 0x92})  # and PUBCOMP
SUBACK: Final = frozenset({0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2})
UNSUBACK: Final = frozenset({0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91})
DISCONNECT: Final = frozenset(
    {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, *range(0x8D, 0xA3)} - {0x91, 0x92}
)
AUTH: Final = frozenset({0x00, 0x18, 0x19})
# 3.1.1 SUBACK: a granted QoS or 0x80 Failure [MQTT-3.9.3-2].
SUBACK_V3: Final = frozenset({0x00, 0x01, 0x02, 0x80})

# MQTT 5 reason code -> MQTT 3.1.1 CONNACK return code (table 3.1 of 3.1.1).
_V3_CONNACK: Final[dict[int, int]] = {
    ReasonCode.SUCCESS: 0,
    ReasonCode.UNSUPPORTED_PROTOCOL_VERSION: 1,
    ReasonCode.CLIENT_IDENTIFIER_NOT_VALID: 2,
    ReasonCode.SERVER_UNAVAILABLE: 3,
    ReasonCode.SERVER_BUSY: 3,
    ReasonCode.SERVER_SHUTTING_DOWN: 3,
    # max_connections: 3.1.1 has no "quota exceeded"; "server unavailable" is the nearest.
    ReasonCode.QUOTA_EXCEEDED: 3,
    ReasonCode.BAD_USER_NAME_OR_PASSWORD: 4,
    ReasonCode.NOT_AUTHORIZED: 5,
    ReasonCode.BANNED: 5,
    ReasonCode.BAD_AUTHENTICATION_METHOD: 5,
}


def is_failure(code: int) -> bool:
    """Section 2.4: reason codes of 0x80 or more say that an operation failed."""
    return code >= 0x80


def fit(code: int, allowed: frozenset[int], fallback: int = ReasonCode.NOT_AUTHORIZED) -> int:
    """``code`` if the packet may carry it, else ``fallback`` (a hook's code for another packet)."""
    return code if code in allowed else fallback


def for_connack(code: int, version: ProtocolVersion) -> int | None:
    """The CONNACK code to send for ``code``; None: close without a CONNACK.

    MQTT 5: a code CONNACK may not carry becomes 0x80 Unspecified error
    [MQTT-3.2.2-8].  3.1.1 has no return code for many refusals (a malformed
    CONNECT among them): the server then just closes [MQTT-3.1.4-1].
    """
    if version is V5:
        return fit(code, CONNACK, ReasonCode.UNSPECIFIED_ERROR)
    return _V3_CONNACK.get(code)


def for_disconnect(code: int) -> int:
    """A DISCONNECT carries a DISCONNECT reason code [MQTT-3.14.2-1]; others become 0x80."""
    return fit(code, DISCONNECT, ReasonCode.UNSPECIFIED_ERROR)


def for_suback(codes: Iterable[int], version: ProtocolVersion) -> tuple[int, ...]:
    """SUBACK codes for ``version``: 3.1.1 knows only the granted QoS and 0x80 Failure."""
    if version is V5:
        return tuple(codes)
    return tuple(c if c < 0x80 else 0x80 for c in codes)


def packet_id_not_found(version: ProtocolVersion) -> int:
    """PUBREL/PUBCOMP for a packet id we do not hold: 0x92 in MQTT 5; 3.1.1 carries no code."""
    return ReasonCode.PACKET_IDENTIFIER_NOT_FOUND if version is V5 else 0
