"""Raw MQTT over WebSocket for the transport tests: the ``websockets`` client (RawWs), the packets it
sends first, and a broker whose listener 0 is plain TCP (``config``, ``port``)."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from websockets.sync.client import ClientConnection, connect

from zanzara.config import Config, ListenerConfig, StorageConfig
from zanzara.mqtt.codec import Reader, encode
from zanzara.mqtt.enums import ProtocolVersion
from zanzara.mqtt.packets import Connect, Packet, Subscribe, Subscription

from brokerthread import BrokerThread

V5_WIRE = ProtocolVersion.MQTT5
TIMEOUT = 10.0


def config(*listeners: ListenerConfig) -> Config:
    """A plain TCP listener (index 0), then the given ones; memory storage."""
    return Config(storage=StorageConfig(backend="memory"), listeners=(ListenerConfig(port=0), *listeners))


def port(b: BrokerThread, index: int) -> int:
    assert b.broker is not None
    return b.broker.addresses[index][1]


class RawWs:
    """The ``websockets`` client speaking MQTT bytes, decoded with zanzara's own codec."""

    def __init__(self, url: str, *, subprotocols: list[str] | None = None, **kw: Any) -> None:
        self._stack = contextlib.ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(
            connect(
                url,
                subprotocols=subprotocols if subprotocols is not None else ["mqtt"],  # type: ignore[arg-type]
                open_timeout=TIMEOUT,
                **kw,
            )
        )
        self.reader = Reader(role="client", version=V5_WIRE)
        self.packets: list[Packet] = []

    def send(self, data: bytes | list[bytes]) -> None:
        self.ws.send(data)

    def recv_message(self, timeout: float = TIMEOUT) -> list[Packet]:
        """The packets of one WebSocket message (one frame from the broker)."""
        data = self.ws.recv(timeout)
        assert isinstance(data, bytes), "the broker sent a text frame"
        self.reader.feed(data)
        return list(self.reader.read_packets())

    def recv(self, timeout: float = TIMEOUT) -> Packet:
        while not self.packets:
            self.packets.extend(self.recv_message(timeout))
        return self.packets.pop(0)

    def close(self) -> None:
        self._stack.close()


def connect_packet(client_id: str | None = None) -> bytes:
    return encode(
        Connect(protocol_version=V5_WIRE, client_id=client_id or f"raw-{uuid.uuid4().hex[:8]}"), V5_WIRE
    )


def subscribe_packet(topic_filter: str, packet_id: int = 1, qos: int = 0) -> bytes:
    return encode(
        Subscribe(packet_id=packet_id, subscriptions=(Subscription(topic_filter=topic_filter, qos=qos),)),
        V5_WIRE,
    )
