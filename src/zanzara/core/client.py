"""A connected client as the core sees it: its session, its identity, and a link to its connection.

:class:`ClientLink` is the whole of what the core needs from a live connection
(implemented by ``transports/connection.py``); the core never imports the
transports.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from ..auth.exchange import AuthExchange
from ..events import DisconnectReason
from ..hooks import ClientInfo
from ..message import Message
from ..mqtt.enums import ProtocolVersion
from ..mqtt.packets import ConnAck, Packet, Will
from ..protocol import PublishEncoder
from ..session import Session

__all__ = [
    "CHALLENGE",
    "REFUSED",
    "Admitted",
    "Awaiting",
    "Challenge",
    "Client",
    "ClientLink",
    "ConnectResult",
    "Refused",
    "Traffic",
]


class ClientLink(Protocol):
    """The core's whole view of a live connection (``transports/connection.py`` implements it).

    The core never sees the connection's protocol object: what it sends goes
    through these methods, which apply the connection's own rules (the client's
    maximum packet size, topic aliases, what 3.1.1 cannot carry).
    """

    # The client's socket is full beyond max_write_buffer: QoS 0 to it is dropped and
    # QoS 1/2 waits in its session queue; the link pumps the queue when it drains.
    congested: bool
    # The MQTT 5 enhanced authentication in progress on this connection, if any.
    auth_exchange: AuthExchange | None

    @property
    def address(self) -> str | None: ...

    @property
    def listener_name(self) -> str | None: ...

    @property
    def identity_as_username(self) -> bool:
        """The username is a client certificate's Common Name the TLS handshake verified."""

    @property
    def certificate_username(self) -> str | None:
        """That Common Name (None: no certificate, or none usable)."""

    @property
    def over_connection_limit(self) -> bool:
        """The server is over ``max_connections``: the CONNECT is refused."""

    @property
    def receive_maximum(self) -> int:
        """The client's Receive Maximum (65535 unless its CONNECT said less)."""

    @property
    def auth_method(self) -> str | None:
        """The Authentication Method of the client's CONNECT."""

    @property
    def is_connecting(self) -> bool:
        """CONNECT received, neither accepted nor refused yet, and the connection still open."""

    @property
    def is_open(self) -> bool:
        """Accepted (CONNACK sent) and neither failed nor closed."""

    @property
    def traffic(self) -> Traffic:
        """What went through this connection so far."""

    def send(self, packet: Packet) -> None: ...

    def send_publish(
        self, encoder: PublishEncoder, qos: int, retain: bool, sub_ids: tuple[int, ...], packet_id: int = 0
    ) -> bool:
        """One recipient's PUBLISH of a fan-out; False if too large for the client [MQTT-3.1.2-25]."""

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
    ) -> bool:
        """A PUBLISH for this client alone (leaving its queue, or resent); False if too large."""

    def fits(self, packet: Packet) -> bool:
        """Would ``packet`` fit the client's Maximum Packet Size (without its optional parts)?"""

    def accept(self, connack: ConnAck, keep_alive: int) -> None:
        """Send the successful CONNACK; the client must keep ``keep_alive``."""

    def refuse(self, reason_code: int, reason: str | None = None) -> None:
        """Refuse the CONNECT (CONNACK with the code that fits the version); the link then closes."""

    def disconnect(self, reason_code: int, reason: str | None = None) -> None:
        """End the connection: v5 clients get DISCONNECT with ``reason_code``, then close."""

    def close(self) -> None:
        """Flush what is queued, then close the connection."""


@dataclass(frozen=True, slots=True)
class Traffic:
    """What went through one connection: PUBLISH packets and bytes, each way."""

    messages_received: int = 0
    messages_sent: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0


@dataclass(slots=True, eq=False)
class Client:
    """A connected client: its connection, session and will."""

    link: ClientLink
    session: Session
    info: ClientInfo
    version: ProtocolVersion
    will: Will | None = None
    disconnect_reason: DisconnectReason = DisconnectReason.CONNECTION_LOST
    # QoS 0 messages dropped because the client did not read them in time.
    messages_dropped: int = 0
    # What its CONNECT said and when it was accepted (wall clock), for the admin API.
    keep_alive: int = 0
    clean_start: bool = True
    connected_at: float = 0.0
    # Acknowledgements waiting for a store commit, in order: (commit, action, argument on
    # success, argument on failure or None); later ones queue behind them.
    pending_acks: deque[tuple[asyncio.Future[None], Callable[[Any], None], Any, Any]] = field(
        default_factory=deque
    )


# -- what a CONNECT (or an AUTH before CONNACK) comes to --------------------------------------------


@dataclass(frozen=True, slots=True)
class Admitted:
    """The client is in: its CONNACK is queued."""

    client: Client


@dataclass(frozen=True, slots=True)
class Refused:
    """Refused, or closed while it was decided: the refusing CONNACK (if any) is queued; close."""


@dataclass(frozen=True, slots=True)
class Challenge:
    """MQTT 5 enhanced authentication asked for more (AUTH 0x18 queued): wait for the client's AUTH."""


@dataclass(frozen=True, slots=True)
class Awaiting:
    """A hook must be awaited first: ``pending`` comes to the decision (read nothing meanwhile)."""

    pending: Coroutine[Any, Any, Admitted | Refused | Challenge]


REFUSED: Final = Refused()
CHALLENGE: Final = Challenge()
ConnectResult = Admitted | Refused | Challenge | Awaiting
