"""Packets in the debug log, as Mosquitto's: what came, from whom, never a payload or a password."""

from __future__ import annotations

import logging
import time

import pytest

from zanzara.mqtt.enums import ProtocolVersion
from zanzara.mqtt.packets import Connect, PubAck, Publish, Subscribe, Subscription
from zanzara.protocol import Hold, PubAcks
from zanzara.transports.connection import describe

from brokerthread import BrokerThread
from clients import V5, PahoClient


def test_describe_names_flags_ids_and_sizes() -> None:
    publish = Publish(topic="a/b", payload=b"secret", qos=1, retain=True, packet_id=7)
    assert describe(publish) == "PUBLISH (d0, q1, r1, m7, 'a/b', ... (6 bytes))"
    connect = Connect(
        protocol_version=ProtocolVersion.MQTT5, client_id="dev", keep_alive=30, password=b"hunter2"
    )
    assert describe(connect) == "CONNECT ('dev', p5, c1, k30)"
    subscribe = Subscribe(packet_id=3, subscriptions=(Subscription(topic_filter="a/#", qos=1),))
    assert describe(subscribe) == "SUBSCRIBE (m3, 'a/#' q1)"
    assert describe(PubAck(packet_id=4)) == "PUBACK (m4)"
    assert describe(PubAcks([PubAck(packet_id=4), PubAck(packet_id=9)])) == "PUBACK x2 (m4..m9)"
    assert describe(Hold(12.5)) == "a hold until 12.500 (max_publish_rate)"


def test_received_packets_are_logged_at_debug_only(caplog: pytest.LogCaptureFixture) -> None:
    with BrokerThread() as b, caplog.at_level(logging.DEBUG, logger="zanzara.transports.connection"):
        client = PahoClient(b.port, "logged", version=V5, password="hunter2", username="u")
        client.publish("a/b", b"secret", qos=1)
        client.disconnect()
        deadline = time.monotonic() + 5
        while "received DISCONNECT" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.02)
    lines = [r.getMessage() for r in caplog.records if r.name == "zanzara.transports.connection"]
    assert any(line.startswith("received CONNECT ('logged', p5") for line in lines), lines
    assert any(
        "received PUBLISH (d0, q1, r0, m1, 'a/b', ... (6 bytes)) from client 'logged'" in x for x in lines
    )
    assert "secret" not in caplog.text and "hunter2" not in caplog.text
