"""Why a connection ended, as the core records it for the ``client_disconnected`` event.

Sans-I/O: the reasons the core sets itself (a DISCONNECT, a takeover, a failed
re-authentication, a store failure); the transport sets the rest (keep-alive,
protocol errors, write timeout, shutdown), tested through sockets.
"""

from __future__ import annotations

from zanzara import DisconnectReason
from zanzara.core import Core
from zanzara.mqtt.enums import ReasonCode

from .conftest import connect, disconnect, drop


def test_a_client_disconnect_says_disconnect(core: Core) -> None:
    """Section 3.14: the client's DISCONNECT is a clean end."""
    client = connect(core, "c")
    disconnect(core, client, ReasonCode.NORMAL_DISCONNECTION)
    assert client.disconnect_reason is DisconnectReason.DISCONNECT


def test_a_takeover_says_takeover(core: Core) -> None:
    """[MQTT-3.1.4-3] the old connection of a client id that connects again ends as a takeover."""
    old = connect(core, "c")
    connect(core, "c")
    assert old.disconnect_reason is DisconnectReason.TAKEOVER
    assert old.disconnect_reason == "takeover"  # a str, for listeners that compare strings


def test_a_lost_connection_says_connection_lost(core: Core) -> None:
    """A socket that just goes away: the default reason."""
    client = connect(core, "c")
    drop(core, client)
    assert client.disconnect_reason is DisconnectReason.CONNECTION_LOST
