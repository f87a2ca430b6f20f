"""The zanzara exception tree.

Every error the broker raises on purpose derives from :class:`ZanzaraError`.
Protocol errors carry the MQTT reason code they map to, so the single place
that turns exceptions into CONNACK/DISCONNECT packets (``protocol.py``) needs
no table of its own.  This module imports nothing from zanzara.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "InvalidArgument",
    "MalformedPacket",
    "PacketTooLarge",
    "ProtocolError",
    "ProtocolViolation",
    "StoreError",
    "StoreInUse",
    "UnsupportedProtocolVersion",
    "ZanzaraError",
]


class ZanzaraError(Exception):
    """Root of every error zanzara raises deliberately."""


class InvalidArgument(ZanzaraError, ValueError):
    """The embedded API was called with something it can never do (our caller's fault, not a peer's).

    A :class:`ValueError` too, so ``except ValueError`` keeps working.  Retrying is pointless.
    """


class ProtocolError(ZanzaraError):
    """The remote peer broke the MQTT protocol.

    ``reason_code`` is the MQTT 5 reason code to send in DISCONNECT (or
    CONNACK when the error happens during CONNECT).  For 3.1.1 the connection
    is simply closed.
    """

    reason_code: int = 0x82  # Protocol Error

    def __init__(self, message: str, reason_code: int | None = None) -> None:
        super().__init__(message)
        if reason_code is not None:
            self.reason_code = reason_code


class MalformedPacket(ProtocolError):
    """The bytes cannot be parsed as the packet they claim to be (0x81)."""

    reason_code = 0x81


class ProtocolViolation(ProtocolError):
    """Parsable, but not allowed here (0x82)."""

    reason_code = 0x82


class PacketTooLarge(ProtocolError):
    """A packet exceeds the maximum packet size (0x95)."""

    reason_code = 0x95


class UnsupportedProtocolVersion(ProtocolError):
    """CONNECT names a protocol level we do not speak (0x84; 3.1.1 return code 0x01)."""

    reason_code = 0x84


class ConfigError(ZanzaraError):
    """A configuration value is missing, unknown or invalid.

    ``field`` is the dotted path of the offending key, e.g. ``listeners.0.port``.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class StoreError(ZanzaraError):
    """A storage back-end failed; the operation that needed it did not happen."""


class StoreInUse(StoreError):
    """Another broker holds the store (the SQLite database, or the Redis key prefix).

    Two brokers writing one store diverge (both hand out the same queued messages), so a
    broker refuses to start on a store that another live process holds.  The message names
    the store and the holder.
    """
