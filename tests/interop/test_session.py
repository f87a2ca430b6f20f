"""Persistent sessions, offline queues, resend on reconnect, session expiry, wills (4.1, 4.4, 3.1.2.5)."""

from __future__ import annotations

import time

import pytest

from zanzara.mqtt.codec import encode
from zanzara.mqtt.enums import ProtocolVersion, ReasonCode
from zanzara.mqtt.packets import Connect, PubAck, Publish, PubRec, PubRel, Subscribe, Subscription
from zanzara.mqtt.properties import Properties

from clients import V5, V311, PahoClient, RawClient, props

VERSIONS = [pytest.param(V311, id="v311"), pytest.param(V5, id="v5")]


MQTT5 = ProtocolVersion.MQTT5


def persistent(port, cid, version, **kw):
    return PahoClient(port, cid, version=version, clean=False, session_expiry=3600, **kw)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("qos", [1, 2])
def test_offline_queue_delivered_once_in_order(broker, version, qos):
    """Persistent session: messages published while offline arrive after reconnect, once (QoS 2), in order."""
    sub = persistent(broker.port, f"off-{qos}", version)
    sub.subscribe("off/#", qos)
    sub.disconnect()
    broker.wait_offline(f"off-{qos}")
    pub = PahoClient(broker.port, version=version)
    for i in range(200):
        pub.publish(f"off/{i % 3}", f"{i}".encode(), qos)
    back = persistent(broker.port, f"off-{qos}", version)
    assert back.session_present
    got = [int(m.payload) for m in back.expect_n(200)]
    assert got == list(range(200))
    back.expect_none()


@pytest.mark.parametrize("version", VERSIONS)
def test_subscriptions_survive_reconnect(broker, version):
    """[MQTT-3.1.2-4] a resumed session keeps its subscriptions."""
    c = persistent(broker.port, "keep-subs", version)
    c.subscribe("ks/a", 1)
    c.disconnect()
    c = persistent(broker.port, "keep-subs", version)
    p = PahoClient(broker.port, version=version)
    p.publish("ks/a", b"still", 1)
    assert c.expect().payload == b"still"


def test_qos0_not_queued_for_offline_session(broker):
    """QoS 0 messages are not queued for an offline session (as Mosquitto by default)."""
    c = persistent(broker.port, "q0-off", V5)
    c.subscribe("q0/x", 1)
    c.disconnect()
    broker.wait_offline("q0-off")
    p = PahoClient(broker.port, version=V5)
    p.publish("q0/x", b"zero", 0)
    p.publish("q0/x", b"one", 1)
    c = persistent(broker.port, "q0-off", V5)
    assert c.expect().payload == b"one"
    c.expect_none()


def test_clean_start_discards_session(broker):
    """[MQTT-3.1.2-4] clean start discards subscriptions and queued messages."""
    c = persistent(broker.port, "cs", V5)
    c.subscribe("cs/x", 1)
    c.disconnect()
    broker.wait_offline("cs")
    p = PahoClient(broker.port, version=V5)
    p.publish("cs/x", b"queued", 1)
    c = PahoClient(broker.port, "cs", version=V5, clean=True, session_expiry=3600)
    assert not c.session_present
    c.expect_none()
    p.publish("cs/x", b"after", 1)
    c.expect_none()


def test_session_expiry_interval(broker):
    """v5 session expiry: the session is gone once the interval has passed."""
    c = PahoClient(broker.port, "short", version=V5, clean=True, session_expiry=1)
    c.subscribe("se/x", 1)
    c.disconnect()
    time.sleep(0.3)
    again = PahoClient(broker.port, "short", version=V5, clean=False, session_expiry=1)
    assert again.session_present
    again.disconnect()
    time.sleep(1.5)
    late = PahoClient(broker.port, "short", version=V5, clean=False, session_expiry=1)
    assert not late.session_present


@pytest.mark.parametrize("version", [ProtocolVersion.MQTT311, ProtocolVersion.MQTT5])
def test_unacknowledged_messages_resent_with_dup(broker, version):
    """[MQTT-4.4.0-1] on reconnect unacknowledged PUBLISH are resent with DUP=1 and PUBREL is resent."""
    expiry = Properties(session_expiry_interval=600) if version is ProtocolVersion.MQTT5 else Properties()
    raw = RawClient(broker.port, version)
    raw.send(Connect(protocol_version=version, client_id="dup-resend", clean_start=False, properties=expiry))
    raw.recv()
    raw.send(Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="rs/#", qos=2),)))
    raw.recv()
    pub = PahoClient(broker.port, version=V5)
    pub.publish("rs/1", b"one", 1)
    pub.publish("rs/2", b"two", 2)
    first = raw.recv()
    second = raw.recv()
    assert (first.payload, first.dup, second.payload, second.dup) == (b"one", False, b"two", False)
    raw.send(PubRec(packet_id=second.packet_id))
    assert raw.recv() == PubRel(packet_id=second.packet_id)
    raw.close()  # neither PUBACK for "one" nor PUBCOMP for "two"
    time.sleep(0.2)
    raw = RawClient(broker.port, version)
    raw.send(Connect(protocol_version=version, client_id="dup-resend", clean_start=False, properties=expiry))
    assert raw.recv().session_present
    resent = raw.recv()
    assert isinstance(resent, Publish) and resent.dup and resent.payload == b"one"
    assert resent.packet_id == first.packet_id
    assert raw.recv() == PubRel(packet_id=second.packet_id)
    raw.send(PubAck(packet_id=resent.packet_id))


@pytest.mark.parametrize("version", VERSIONS)
def test_will_published_on_abnormal_close(broker, version):
    """[MQTT-3.1.2-8] the will is published when the connection closes without DISCONNECT."""
    watcher = PahoClient(broker.port, version=version)
    watcher.subscribe("will/#", 1)
    dying = PahoClient(broker.port, version=version, will=("will/a", b"gone", 1, False))
    dying.kill()
    msg = watcher.expect()
    assert (msg.topic, msg.payload) == ("will/a", b"gone")


@pytest.mark.parametrize("version", VERSIONS)
def test_will_not_published_on_clean_disconnect(broker, version):
    """[MQTT-3.1.2-10] a normal DISCONNECT discards the will."""
    watcher = PahoClient(broker.port, version=version)
    watcher.subscribe("will/#", 1)
    c = PahoClient(broker.port, version=version, will=("will/b", b"no", 1, False))
    c.disconnect()
    watcher.expect_none(0.5)


def test_will_published_on_disconnect_with_will_message(broker):
    """v5 DISCONNECT 0x04 (Disconnect with Will Message) publishes the will."""
    watcher = PahoClient(broker.port, version=V5)
    watcher.subscribe("will/#", 1)
    c = PahoClient(broker.port, version=V5, will=("will/c", b"asked", 1, False))
    c.disconnect(reason_code=ReasonCode.DISCONNECT_WITH_WILL_MESSAGE)
    assert watcher.expect().payload == b"asked"


def test_will_delay_cancelled_by_reconnect(broker):
    """[MQTT-3.1.3-9] a reconnect within the will delay interval cancels the will."""
    watcher = PahoClient(broker.port, version=V5)
    watcher.subscribe("will/#", 1)
    wp = props("WILLMESSAGE", WillDelayInterval=1)
    c = PahoClient(
        broker.port,
        "wd",
        version=V5,
        clean=False,
        session_expiry=60,
        will=("will/d", b"late", 1, False),
        will_properties=wp,
    )
    c.kill()
    time.sleep(0.3)
    c2 = PahoClient(broker.port, "wd", version=V5, clean=False, session_expiry=60)
    watcher.expect_none(1.3)
    c2.disconnect()


def test_will_delay_elapses(broker):
    """The will is published once the will delay interval has passed."""
    watcher = PahoClient(broker.port, version=V5)
    watcher.subscribe("will/#", 1)
    wp = props("WILLMESSAGE", WillDelayInterval=1)
    c = PahoClient(
        broker.port,
        "wd2",
        version=V5,
        clean=False,
        session_expiry=60,
        will=("will/e", b"delayed", 1, False),
        will_properties=wp,
    )
    start = time.monotonic()
    c.kill()
    msg = watcher.expect(timeout=4)
    assert msg.payload == b"delayed"
    assert time.monotonic() - start >= 0.9


def test_retained_will(broker):
    """A will with RETAIN set becomes the retained message."""
    c = PahoClient(broker.port, version=V311, will=("will/ret", b"offline", 1, True))
    c.kill()
    time.sleep(0.3)
    late = PahoClient(broker.port, version=V311)
    late.subscribe("will/ret", 1)
    msg = late.expect()
    assert (msg.payload, msg.retain) == (b"offline", True)


def test_a_run_of_pubacks_in_one_write_completes_each_and_refills_the_window(broker):
    """PUBACKs read together (a subscriber answering its window at once) are handled as a run.

    Each completes its own message (one for a packet id nothing is in flight under is ignored),
    and the window the run opens is refilled in queue order, never beyond the client's Receive
    Maximum [MQTT-3.3.4-9].
    """
    session = Properties(session_expiry_interval=600, receive_maximum=3)
    raw = RawClient(broker.port, MQTT5)
    raw.send(Connect(protocol_version=MQTT5, client_id="ack-run", clean_start=False, properties=session))
    raw.recv()
    raw.send(Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="run/#", qos=1),)))
    raw.recv()
    raw.close()
    time.sleep(0.2)
    pub = PahoClient(broker.port, version=V5)
    for n in range(8):
        pub.publish(f"run/{n}", str(n).encode(), 1)
    raw = RawClient(broker.port, MQTT5)
    raw.send(Connect(protocol_version=MQTT5, client_id="ack-run", clean_start=False, properties=session))
    assert raw.recv().session_present
    got: list[bytes] = []
    while len(got) < 8:
        window = [raw.recv() for _ in range(min(3, 8 - len(got)))]
        assert all(isinstance(p, Publish) and p.qos == 1 for p in window)
        got += [p.payload for p in window]
        acks = [PubAck(packet_id=p.packet_id) for p in window] + [PubAck(packet_id=999)]
        raw.send(b"".join(encode(a, MQTT5) for a in acks))
    assert got == [str(n).encode() for n in range(8)]
    with pytest.raises(AssertionError, match="none came"):
        raw.recv(timeout=0.3)  # the window holds: nothing beyond the 8, nothing resent
    raw.close()
    time.sleep(0.2)
    raw = RawClient(broker.port, MQTT5)
    raw.send(Connect(protocol_version=MQTT5, client_id="ack-run", clean_start=False, properties=session))
    assert raw.recv().session_present
    with pytest.raises(AssertionError, match="none came"):
        raw.recv(timeout=0.3)  # every message was completed: nothing to resend
    raw.close()
