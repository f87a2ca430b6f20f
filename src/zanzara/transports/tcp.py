"""MQTT over TCP, and over TLS (mqtts) when given an ``ssl.SSLContext`` (see ``tls.py``)."""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from collections.abc import Callable

from .connection import MqttConnection

__all__ = ["TcpListener"]

logger = logging.getLogger(__name__)


class _AfterHandshake(asyncio.Protocol):
    """Makes the MQTT connection only once the TLS handshake has succeeded.

    asyncio creates a protocol per accepted socket, but tells it nothing when
    the TLS handshake fails; a connection made then would never hear of its
    end.  This stand-in hands the transport to a real connection at
    ``connection_made`` (after the handshake) and steps aside.
    """

    __slots__ = ("_factory",)

    def __init__(self, factory: Callable[[], MqttConnection]) -> None:
        self._factory = factory

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        conn = self._factory()
        transport.set_protocol(conn)
        conn.connection_made(transport)


class TcpListener:
    """Accepts MQTT connections on one address."""

    def __init__(
        self,
        factory: Callable[[], MqttConnection],
        host: str,
        port: int,
        *,
        name: str,
        ssl_context: ssl.SSLContext | None = None,
        ssl_handshake_timeout: float | None = None,
    ) -> None:
        self._factory = factory
        self.host = host
        self.port = port
        self.name = name
        self._ssl = ssl_context
        # Seconds a client has to finish the TLS handshake (asyncio's default is 60).
        self._ssl_handshake_timeout = ssl_handshake_timeout if ssl_context is not None else None
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        factory: Callable[[], asyncio.Protocol] = self._factory
        if self._ssl is not None:
            factory = functools.partial(_AfterHandshake, self._factory)
        self._server = await loop.create_server(
            factory,
            self.host,
            self.port,
            ssl=self._ssl,
            ssl_handshake_timeout=self._ssl_handshake_timeout,
            reuse_address=True,
            backlog=4096,
        )
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]  # the real port when 0 was asked for

    @property
    def url(self) -> str:
        scheme = "mqtts" if self._ssl else "mqtt"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop accepting.  Open connections stay: the broker disconnects them (MQTT first)."""
        server, self._server = self._server, None
        if server is not None:
            # Not wait_closed(): since Python 3.12 it also waits for every open
            # connection to close, which the broker does only after this returns.
            server.close()
