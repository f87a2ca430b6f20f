"""Clients cannot write the broker's ``$SYS`` tree (MQTT 5.0 section 4.7.2), through paho-mqtt."""

from __future__ import annotations

import queue

import pytest

from zanzara.mqtt.enums import ReasonCode
from zanzara.mqtt.packets import PubAck, Publish

from clients import V5, V311, PahoClient, RawClient


@pytest.mark.parametrize("version", [pytest.param(V311, id="v311"), pytest.param(V5, id="v5")])
def test_a_forged_retained_uptime_is_not_readable(broker, version):
    """Section 4.7.2: the server SHOULD prevent clients from using ``$`` topics to talk to others.

    A forged retained ``$SYS/broker/uptime`` is acknowledged (3.1.1) or refused (v5) and
    dropped: neither a subscriber already there nor a later one reads it.
    """
    watcher = PahoClient(broker.port, version=version)
    watcher.subscribe("$SYS/broker/uptime", 1)
    assert watcher.expect().payload.endswith(b" seconds")  # the broker's own, retained
    forger = PahoClient(broker.port, version=version)
    forger.publish("$SYS/broker/uptime", b"forged", qos=1, retain=True)
    forger.publish("$share/g/t", b"forged", qos=1, retain=True)
    assert b"forged" not in received(watcher)
    late = PahoClient(broker.port, version=version)
    late.subscribe("$SYS/broker/uptime", 1)
    late.subscribe("$share/g/t", 1)
    got = received(late)  # the retained uptime, and maybe an update meanwhile
    assert got and all(payload.endswith(b" seconds") for payload in got)
    for client in (watcher, forger, late):
        client.disconnect()


def received(client: PahoClient) -> list[bytes]:
    """The payloads ``client`` gets until nothing more comes for a moment."""
    payloads = []
    while True:
        try:
            payloads.append(client.messages.get(timeout=0.5).payload)
        except queue.Empty:
            return payloads


def test_v5_publisher_is_told_not_authorized(broker):
    """Section 3.4.2.1: PUBACK 0x87 Not authorized."""
    raw = RawClient(broker.port)
    raw.connect("forger")
    raw.send(Publish(topic="$SYS/broker/uptime", payload=b"forged", qos=1, packet_id=1, retain=True))
    assert raw.recv() == PubAck(packet_id=1, reason_code=ReasonCode.NOT_AUTHORIZED)
    raw.close()
