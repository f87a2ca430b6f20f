"""A connected client as the core sees it: its session, its identity, and a link to its connection.

:class:`ClientLink` is the whole of what the core needs from a live connection
(implemented by ``transports/connection.py``); the core never imports the
transports.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..hooks import ClientInfo
from ..mqtt.enums import ProtocolVersion
from ..mqtt.packets import Packet, Will
from ..protocol import ServerProtocol
from ..session import Session

__all__ = ["Client", "ClientLink"]


class ClientLink(Protocol):
    """What the broker needs from a live connection (implemented by transports)."""

    protocol: ServerProtocol
    # The client's socket is full beyond max_write_buffer: QoS 0 to it is dropped and
    # QoS 1/2 waits in its session queue; the link pumps the queue when it drains.
    congested: bool

    @property
    def address(self) -> str | None: ...

    @property
    def listener_name(self) -> str | None: ...

    @property
    def identity_as_username(self) -> bool:
        """The username is a client certificate's Common Name the TLS handshake verified."""

    def send(self, packet: Packet) -> None: ...

    def send_bytes(self, data: bytes) -> bool: ...

    def close(self) -> None:
        """Flush what is queued, then close the connection."""

    def set_keep_alive(self, seconds: int) -> None: ...


@dataclass(slots=True, eq=False)
class Client:
    """A connected client: its connection, session and will."""

    link: ClientLink
    session: Session
    info: ClientInfo
    version: ProtocolVersion
    will: Will | None = None
    disconnect_reason: str = "connection_lost"
    # QoS 0 messages dropped because the client did not read them in time.
    messages_dropped: int = 0
    # Acknowledgements waiting for a store commit, in order: (commit, action, argument on
    # success, argument on failure or None); later ones queue behind them.
    pending_acks: deque[tuple[asyncio.Future[None], Callable[[Any], None], Any, Any]] = field(
        default_factory=deque
    )
