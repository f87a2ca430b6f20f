"""From a ``[[listeners]]`` entry to a listener: MQTT over TCP or WebSocket, with or without TLS.

The one place that knows which transport serves which protocol, so the server
only loops over its configuration.  Imports the transports and the configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..config import ListenerConfig, MqttConfig
from .connection import MqttConnection
from .tcp import TcpListener
from .tls import server_context
from .websocket import WebSocketListener

__all__ = ["Listener", "create_listener"]

# Smallest WebSocket message accepted whatever max_packet_size says, so that a
# client batching several small packets into one message is not refused.
_MIN_WS_MESSAGE = 64 * 1024


class Listener(Protocol):
    """A listening socket; ``port`` is the real one once started (when 0 was configured)."""

    host: str
    port: int
    name: str

    @property
    def url(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Stop accepting; connections already open are left to the broker."""


def create_listener(
    config: ListenerConfig, index: int, factory: Callable[[], MqttConnection], mqtt: MqttConfig
) -> Listener:
    """The listener ``config`` describes (``listeners.<index>`` in errors); not started yet.

    Raises :class:`~zanzara.errors.ConfigError` when its TLS files are unusable.
    """
    name = config.name or f"listener{index}"
    ssl_context = server_context(config, f"listeners.{index}") if config.tls else None
    if config.use_identity_as_username:
        factory = _with_identity(factory)
    if config.protocol == "ws":
        return WebSocketListener(
            factory,
            config.host,
            config.port,
            name=name,
            path=config.path,
            ssl_context=ssl_context,
            # A message may hold several packets; one packet may not exceed max_packet_size.
            max_message_size=max(mqtt.max_packet_size, _MIN_WS_MESSAGE),
            open_timeout=mqtt.connect_timeout,
            static_dir=config.static_dir,
            bundle=config.bundle,
        )
    return TcpListener(
        factory,
        config.host,
        config.port,
        name=name,
        ssl_context=ssl_context,
        ssl_handshake_timeout=mqtt.connect_timeout,
    )


def _with_identity(factory: Callable[[], MqttConnection]) -> Callable[[], MqttConnection]:
    """``factory`` whose connections take the client certificate's Common Name as username."""

    def make() -> MqttConnection:
        conn = factory()
        conn.identity_as_username = True
        return conn

    return make
