"""Connection limits: how many sockets are open, per listener and in all, and what a new one gets.

Counting starts at accept (after the handshake on TLS listeners, when the
connection is made), before CONNECT, as Mosquitto counts for its
``max_connections``: a socket that never speaks holds a file descriptor and
memory as much as a client does.  A socket within the limits is served.  One
over them is still read until its CONNECT, so that the client learns why it
is turned away (v5 CONNACK 0x97 Quota exceeded, 3.1.1 CONNACK 0x03 Server
unavailable).  Those refusals are themselves bounded: beyond
:data:`PENDING_REFUSALS` of them at once, a new socket is closed right after
accept, as Mosquitto closes every one, so a flood of connections cannot hold
more than the limit plus that many descriptors.

Counts only: no sockets, no asyncio; the server calls :meth:`admit` when it
makes a connection and :meth:`release` when that connection is gone.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["PENDING_REFUSALS", "Admission", "ConnectionLimits"]

# Over-limit sockets that may wait for their CONNECT (to be refused with a
# reason code) at the same time; more are closed without a word.
PENDING_REFUSALS = 64


class Admission(Enum):
    """What :meth:`ConnectionLimits.admit` gives a new connection."""

    SERVE = "serve"  # within the limits
    REFUSE = "refuse"  # over a limit: CONNACK with a refusal when the CONNECT comes
    DROP = "drop"  # over a limit with too many refusals pending: closed at once


class ConnectionLimits:
    """Open connections against ``mqtt.max_connections`` and each listener's ``max_connections``."""

    def __init__(self, max_connections: int = -1) -> None:
        self._max_total = max_connections  # -1: unlimited
        self._total = 0
        self._per_listener: dict[int, int] = {}
        self._refusing = 0

    @property
    def open(self) -> int:
        """Connections being served (refused ones are not counted)."""
        return self._total

    def admit(self, listener: int, listener_max: int = -1) -> Admission:
        """Count a new connection on ``listener`` (its index) and say what it gets."""
        served = self._per_listener.get(listener, 0)
        if (listener_max < 0 or served < listener_max) and (
            self._max_total < 0 or self._total < self._max_total
        ):
            self._per_listener[listener] = served + 1
            self._total += 1
            return Admission.SERVE
        if self._refusing >= PENDING_REFUSALS:
            return Admission.DROP
        self._refusing += 1
        return Admission.REFUSE

    def release(self, listener: int, admission: Admission) -> None:
        """The connection that :meth:`admit` answered ``admission`` is closed."""
        if admission is Admission.SERVE:
            self._per_listener[listener] -= 1
            self._total -= 1
        elif admission is Admission.REFUSE:
            self._refusing -= 1
