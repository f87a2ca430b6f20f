"""Will messages and the Will Delay Interval (MQTT 5.0 sections 3.1.2.5, 3.1.3.2.2, 3.14; 3.1.1 3.1.2.5).

Published when the connection closes without a normal DISCONNECT, not after
one; MQTT 5 DISCONNECT 0x04 asks for it.  A Will Delay Interval holds it
back: published when the delay passes or the session ends, whichever is
first, and never if the client reconnects to its session meanwhile.  The
fake scheduler moves time; nothing sleeps.
"""

from __future__ import annotations

from zanzara.core import Client, Core
from zanzara.mqtt.enums import ProtocolVersion
from zanzara.mqtt.packets import Subscribe, Subscription
from zanzara.mqtt.properties import Properties

from .conftest import (
    RC,
    FakeScheduler,
    both_versions,
    connect,
    disconnect,
    disconnect_code,
    drop,
    message,
    receive,
    sent,
    subscribe,
    will,
)


def watcher(core: Core, version: ProtocolVersion = ProtocolVersion.MQTT5, qos: int = 0) -> Client:
    """A client that sees every will."""
    client = connect(core, "watcher", version=version)
    subscribe(core, client, "will/#", qos=qos)
    return client


def device(core: Core, delay: int | None = None, expiry: int = 0, **kw: object) -> Client:
    """A v5 client with a will on ``will/dev`` and the given Will Delay and Session Expiry Intervals."""
    props = {"will_delay_interval": delay} if delay is not None else {}
    return connect(
        core,
        "dev",
        will=will("will/dev", b"offline", **props),
        clean_start=False,
        session_expiry_interval=expiry,
        **kw,
    )


class TestWill_3_1_2_5:
    @both_versions
    def test_published_when_the_connection_is_lost(self, core: Core, version: ProtocolVersion) -> None:
        """[MQTT-3.1.2-8] the will is published once the connection closes without DISCONNECT."""
        w = watcher(core, version)
        dev = connect(core, "dev", version=version, will=will("will/dev", b"offline"))
        assert sent(w.link) == []
        drop(core, dev)
        assert sent(w.link) == [message("will/dev", b"offline")]

    @both_versions
    def test_not_after_a_normal_disconnect(self, core: Core, version: ProtocolVersion) -> None:
        """[MQTT-3.1.2-10] a DISCONNECT with 0x00 removes the will; [MQTT-3.14.4-3] it is not published.

        3.1.1 [MQTT-3.1.2-10], [MQTT-3.14.4-3]: any DISCONNECT.
        """
        w = watcher(core, version)
        dev = connect(core, "dev", version=version, will=will("will/dev", b"offline"))
        disconnect(core, dev)
        assert sent(w.link) == []

    def test_disconnect_with_will_message_v5(self, core: Core) -> None:
        """3.14.2.1: DISCONNECT 0x04 Disconnect with Will Message: the server publishes the will."""
        w = watcher(core)
        dev = connect(core, "dev", will=will("will/dev", b"offline"))
        disconnect(core, dev, RC.DISCONNECT_WITH_WILL_MESSAGE)
        assert sent(w.link) == [message("will/dev", b"offline")]

    def test_published_after_a_protocol_error(self, core: Core) -> None:
        """[MQTT-3.1.2-8] the server closing the connection for a Protocol Error publishes the will."""
        w = watcher(core)
        dev = connect(core, "dev", will=will("will/dev", b"offline"))
        receive(core, dev, Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="a/#/b"),)))
        assert disconnect_code(sent(dev.link)) == RC.PROTOCOL_ERROR
        drop(core, dev)
        assert sent(w.link) == [message("will/dev", b"offline")]

    @both_versions
    def test_qos_and_retain_of_the_will(self, core: Core, version: ProtocolVersion) -> None:
        """[MQTT-3.1.2-15] the will goes at its Will QoS; [MQTT-3.1.2-17] Will Retain 1: retained."""
        w = watcher(core, version, qos=2)
        dev = connect(core, "dev", version=version, will=will("will/dev", b"offline", qos=1, retain=True))
        drop(core, dev)
        assert sent(w.link) == [message("will/dev", b"offline", qos=1, packet_id=1)]
        late = connect(core, "late", version=version)
        subscribe(core, late, "will/dev")
        assert sent(late.link) == [message("will/dev", b"offline", retain=True)]

    def test_will_properties_are_forwarded_without_the_delay(self, core: Core) -> None:
        """3.1.3.2: the will's properties go with it; the Will Delay Interval is the server's alone."""
        w = watcher(core)
        connect_props = will("will/dev", b"offline", content_type="text/plain", will_delay_interval=0)
        dev = connect(core, "dev", will=connect_props)
        drop(core, dev)
        assert sent(w.link) == [
            message("will/dev", b"offline", properties=Properties(content_type="text/plain"))
        ]


class TestWillDelay_3_1_3_2_2:
    def test_published_after_the_delay(self, core: Core, scheduler: FakeScheduler) -> None:
        """3.1.3.2.2: the server delays the will until the Will Delay Interval has passed."""
        w = watcher(core)
        dev = device(core, delay=10, expiry=60)
        drop(core, dev)
        scheduler.advance(9.9)
        assert sent(w.link) == []
        scheduler.advance(0.1)
        assert sent(w.link) == [message("will/dev", b"offline")]
        scheduler.advance(100)
        assert sent(w.link) == []

    def test_reconnecting_cancels_it(self, core: Core, scheduler: FakeScheduler) -> None:
        """[MQTT-3.1.3-9] a new connection to the session before the delay passed: no will."""
        w = watcher(core)
        dev = device(core, delay=10, expiry=60)
        drop(core, dev)
        scheduler.advance(5)
        again = device(core, delay=10, expiry=60)
        assert again.link.connack is not None
        assert again.link.connack.session_present
        scheduler.advance(30)
        assert sent(w.link) == []

    def test_published_when_the_session_ends_first(self, core: Core, scheduler: FakeScheduler) -> None:
        """[MQTT-3.1.2-8] after the delay *or when the session ends*, whichever happens first."""
        w = watcher(core)
        dev = device(core, delay=100, expiry=20)
        drop(core, dev)
        scheduler.advance(19.9)
        assert sent(w.link) == []
        scheduler.advance(0.1)
        assert sent(w.link) == [message("will/dev", b"offline")]
        assert "dev" not in core.sessions

    def test_session_ending_with_the_connection_publishes_at_once(self, core: Core) -> None:
        """Session Expiry 0: the session ends with the connection, so a delayed will goes now."""
        w = watcher(core)
        dev = device(core, delay=100, expiry=0)
        drop(core, dev)
        assert sent(w.link) == [message("will/dev", b"offline")]

    def test_normal_disconnect_leaves_no_timer(self, core: Core, scheduler: FakeScheduler) -> None:
        """[MQTT-3.1.2-10] DISCONNECT 0x00 deletes the will: nothing waits to publish it."""
        w = watcher(core)
        dev = device(core, delay=10, expiry=60)
        disconnect(core, dev)
        assert core.state.will_timers == {}
        scheduler.advance(100)
        assert sent(w.link) == []
