"""The core's counters (``Stats``), read by ``$SYS`` and metrics: each moves when its event happens."""

from __future__ import annotations

from zanzara.core import Core
from zanzara.mqtt.packets import PubAck

from .conftest import (
    CoreFactory,
    FakeScheduler,
    connect,
    connect_packet,
    drop,
    publish,
    publishes,
    receive,
    refused,
    subscribe,
)


def test_connects_received_counts_refused_ones_too(make_core: CoreFactory) -> None:
    core = make_core(allow_anonymous=False)
    refused(core, connect_packet("a"))
    assert core.stats.connects_received == 1
    assert core.stats.connections_total == 0


def test_sessions_expired(core: Core, scheduler: FakeScheduler) -> None:
    """Section 4.1: a session ends once its expiry interval passes after its connection closed."""
    drop(core, connect(core, "gone", clean_start=False, session_expiry_interval=5))
    drop(core, connect(core, "back", clean_start=False, session_expiry_interval=5))
    connect(core, "back", clean_start=False, session_expiry_interval=5)
    scheduler.advance(6)
    assert core.stats.sessions_expired == 1


def test_drops_by_reason(core: Core) -> None:
    sub = connect(core, "s", clean_start=False, session_expiry_interval=60)
    subscribe(core, sub, "t", qos=1)
    core.sessions["s"].max_queued = 1
    sub.link.congested = True
    publish(core, connect(core, "p"), "t", b"0")  # QoS 0 to a full socket
    core.publish("t", b"1", qos=1)
    core.publish("t", b"2", qos=1)  # the queue holds one: the older goes
    assert core.stats.drops == {"slow subscriber": 1, "queue full": 1}
    connect(core, "s", clean_start=True)  # [MQTT-3.1.2-4] the session and its queue go
    assert core.stats.drops == {"slow subscriber": 1, "queue full": 1, "session ended": 1}
    assert core.stats.messages_dropped == 3


def test_a_run_of_pubacks_counts_every_packet(core: Core) -> None:
    sub = connect(core, "s")
    subscribe(core, sub, "t", qos=1)
    for i in range(3):
        core.publish("t", b"%d" % i, qos=1)
    assert len(publishes(sub.link)) == 3
    before = core.stats.packets_received
    # The test's receive() hands the core one PubAcks for the run, as the transport does.
    receive(core, sub, PubAck(packet_id=1), PubAck(packet_id=2), PubAck(packet_id=3))
    assert core.stats.packets_received - before == 2  # the transport counts the run as one
