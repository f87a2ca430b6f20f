"""Plain TCP listeners (TLS will plug in here through an ``ssl.SSLContext``)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable

from .connection import MqttConnection

__all__ = ["TcpListener"]

logger = logging.getLogger(__name__)


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
    ) -> None:
        self._factory = factory
        self.host = host
        self.port = port
        self.name = name
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._factory, self.host, self.port, ssl=self._ssl, reuse_address=True, backlog=4096
        )
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]  # the real port when 0 was asked for

    @property
    def url(self) -> str:
        scheme = "mqtts" if self._ssl else "mqtt"
        return f"{scheme}://{self.host}:{self.port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
