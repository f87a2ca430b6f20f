"""PUBLISH flows, subscriptions and MQTT 5 publish properties through paho-mqtt (spec 3.3-3.11, 4.3-4.8)."""

from __future__ import annotations

import time

import pytest

from zanzara.config import MqttConfig
from zanzara.mqtt.codec import encode
from zanzara.mqtt.enums import ProtocolVersion, ReasonCode
from zanzara.mqtt.packets import (
    Disconnect,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
)
from zanzara.mqtt.properties import Properties

from clients import V5, V311, PahoClient, RawClient, props

VERSIONS = [pytest.param(V311, id="v311"), pytest.param(V5, id="v5")]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_each_qos_in_order(broker, version, qos):
    """QoS 0/1/2 end to end; [MQTT-4.6.0-6] order per topic is preserved."""
    sub = PahoClient(broker.port, version=version)
    assert sub.subscribe("q/+", qos) == [qos]
    pub = PahoClient(broker.port, version=version)
    for i in range(50):
        pub.publish("q/x", f"m{i}".encode(), qos)
    got = sub.expect_n(50)
    assert [m.payload for m in got] == [f"m{i}".encode() for i in range(50)]
    assert {m.qos for m in got} == {qos}
    sub.expect_none()
    pub.disconnect()
    sub.disconnect()


@pytest.mark.parametrize("version", VERSIONS)
def test_qos_downgraded_to_granted(broker, version):
    """[MQTT-3.8.4-8] delivered QoS is the minimum of published and granted QoS."""
    sub = PahoClient(broker.port, version=version)
    sub.subscribe("down", 1)
    pub = PahoClient(broker.port, version=version)
    pub.publish("down", b"x", 2)
    assert sub.expect().qos == 1
    sub.disconnect()
    pub.disconnect()


def test_overlapping_subscriptions_v311_one_copy_highest_qos(broker):
    """[MQTT-3.3.5-1] overlapping subscriptions: one copy at the highest QoS."""
    sub = PahoClient(broker.port, version=V311)
    sub.subscribe([("over/#", 0), ("over/+", 2)])
    pub = PahoClient(broker.port, version=V311)
    pub.publish("over/a", b"x", 2)
    msg = sub.expect()
    assert msg.qos == 2
    sub.expect_none()


def test_overlapping_subscriptions_v5_carry_all_subscription_ids(broker):
    """[MQTT-3.3.4-3] one copy with the identifiers of every matching subscription."""
    sub = PahoClient(broker.port, version=V5)
    sub.subscribe("ov/#", 1, properties=props("SUBSCRIBE", SubscriptionIdentifier=7))
    sub.subscribe("ov/+", 0, properties=props("SUBSCRIBE", SubscriptionIdentifier=9))
    pub = PahoClient(broker.port, version=V5)
    pub.publish("ov/a", b"x", 1)
    msg = sub.expect()
    assert msg.qos == 1
    assert sorted(msg.properties.SubscriptionIdentifier) == [7, 9]
    sub.expect_none()


def test_no_local(broker):
    """[MQTT-3.8.3-3] no local: a client does not receive its own publications."""
    c = PahoClient(broker.port, version=V5)
    c.subscribe("nl", 0, no_local=True)
    other = PahoClient(broker.port, version=V5)
    other.subscribe("nl", 0)
    c.publish("nl", b"mine", 1)
    assert other.expect().payload == b"mine"
    c.expect_none()


def test_retain_as_published(broker):
    """[MQTT-3.3.1-12/13] the RETAIN flag is forwarded only with retain as published."""
    rap = PahoClient(broker.port, version=V5)
    rap.subscribe("rap", 0, retain_as_published=True)
    plain = PahoClient(broker.port, version=V5)
    plain.subscribe("rap", 0)
    pub = PahoClient(broker.port, version=V5)
    pub.publish("rap", b"r", 1, retain=True)
    assert rap.expect().retain is True
    assert plain.expect().retain is False


@pytest.mark.parametrize("version", VERSIONS)
def test_retained_messages(broker, version):
    """[MQTT-3.3.1-5] stored; [MQTT-3.3.1-9] sent with RETAIN; [MQTT-3.3.1-6] cleared by empty payload."""
    pub = PahoClient(broker.port, version=version)
    pub.publish("ret/a", b"A", 1, retain=True)
    pub.publish("ret/b", b"B", 1, retain=True)
    pub.publish("ret/b", b"B2", 1, retain=True)
    s1 = PahoClient(broker.port, version=version)
    s1.subscribe("ret/+", 1)
    got = {m.topic: (m.payload, m.retain) for m in s1.expect_n(2)}
    assert got == {"ret/a": (b"A", True), "ret/b": (b"B2", True)}
    pub.publish("ret/a", b"", 1, retain=True)
    assert s1.expect().payload == b""  # the clearing message is still delivered live
    s2 = PahoClient(broker.port, version=version)
    s2.subscribe("ret/#", 1)
    assert [(m.topic, m.payload) for m in s2.expect_n(1)] == [("ret/b", b"B2")]
    s2.expect_none()


@pytest.mark.parametrize("handling,expected", [(0, 2), (1, 1), (2, 0)])
def test_retain_handling(broker, handling, expected):
    """[MQTT-3.3.1-9..11] retain handling 0: always, 1: new subscriptions only, 2: never."""
    pub = PahoClient(broker.port, version=V5)
    pub.publish("rh/x", b"kept", 1, retain=True)
    sub = PahoClient(broker.port, version=V5)
    sub.subscribe("rh/x", 1, retain_handling=handling)
    sub.subscribe("rh/x", 1, retain_handling=handling)  # the same subscription again
    count = 0
    try:
        while True:
            sub.expect(timeout=0.4)
            count += 1
    except AssertionError:
        pass
    assert count == expected


def test_dollar_topics_not_matched_by_leading_wildcard(broker):
    """[MQTT-4.7.2-1] '#' does not match topics beginning with '$'."""
    sub = PahoClient(broker.port, version=V5)
    sub.subscribe("#", 0)
    dollar = PahoClient(broker.port, version=V5)
    dollar.subscribe("$app/x", 0)
    broker.run(broker.broker.publish("$app/x", b"d"))
    assert dollar.expect().payload == b"d"
    sub.expect_none()


@pytest.mark.parametrize("version", VERSIONS)
def test_shared_subscription_round_robin(broker, version):
    """[MQTT-4.8.2] $share/group/filter: each message goes to one member, in turn."""
    members = [PahoClient(broker.port, version=version) for _ in range(3)]
    for m in members:
        m.subscribe("$share/g1/jobs/#", 1)
    normal = PahoClient(broker.port, version=version)
    normal.subscribe("jobs/#", 1)
    pub = PahoClient(broker.port, version=version)
    for i in range(30):
        pub.publish("jobs/run", str(i).encode(), 1)
    assert len(normal.expect_n(30)) == 30
    counts = []
    for m in members:
        n = 0
        try:
            while True:
                m.expect(timeout=0.3)
                n += 1
        except AssertionError:
            pass
        counts.append(n)
    assert counts == [10, 10, 10]


RAW_VERSIONS = [
    pytest.param(ProtocolVersion.MQTT311, id="v311"),
    pytest.param(ProtocolVersion.MQTT5, id="v5"),
]
MALFORMED_FILTERS = [
    pytest.param("a/#/b", id="hash-not-last"),  # [MQTT-4.7.1-1] (3.1.1: [MQTT-4.7.1-2])
    pytest.param("sport/tennis#", id="hash-not-alone"),  # [MQTT-4.7.1-1]
    pytest.param("x+/y", id="plus-not-alone"),  # [MQTT-4.7.1-2] (3.1.1: [MQTT-4.7.1-3])
    pytest.param("$share/g", id="share-without-filter"),  # [MQTT-4.8.2-2]
    pytest.param("$share/g/", id="share-empty-filter"),  # [MQTT-4.8.2-2]
    pytest.param("$share//a", id="share-empty-name"),  # [MQTT-4.8.2-1]
    pytest.param("$share/+/a", id="share-wildcard-name"),  # [MQTT-4.8.2-2]
    pytest.param("$share/g/a+", id="share-malformed-filter"),
]


def closed_for_protocol_error(raw: RawClient) -> None:
    """MQTT 5 section 4.13: DISCONNECT 0x82 then close; 3.1.1 [MQTT-4.8.0-1]: close, nothing sent."""
    got = raw.expect_closed()
    if raw.version is ProtocolVersion.MQTT5:
        assert [(type(p), p.reason_code) for p in got] == [(Disconnect, ReasonCode.PROTOCOL_ERROR)]
    else:
        assert got == []


def persistent_raw(broker, version: ProtocolVersion, client_id: str) -> RawClient:
    raw = RawClient(broker.port, version)
    if version is ProtocolVersion.MQTT5:
        connack = raw.connect(client_id, properties=Properties(session_expiry_interval=300))
    else:
        connack = raw.connect(client_id, clean_start=False)
    assert connack.reason_code == 0
    return raw


@pytest.mark.parametrize("topic_filter", MALFORMED_FILTERS)
@pytest.mark.parametrize("version", RAW_VERSIONS)
def test_malformed_subscribe_filter_closes(broker, version, topic_filter):
    """A malformed filter in SUBSCRIBE is a protocol violation, not a SUBACK failure code: MQTT 5
    DISCONNECT 0x82 (section 4.13), 3.1.1 close [MQTT-4.8.0-1].  The well formed filter before it in
    the same packet is not subscribed either: the packet is refused as a whole."""
    raw = persistent_raw(broker, version, f"bad-sub-{version.value}")
    subs = (Subscription(topic_filter="ok/+", qos=1), Subscription(topic_filter=topic_filter, qos=1))
    raw.send(Subscribe(packet_id=9, subscriptions=subs))
    closed_for_protocol_error(raw)
    cid = f"bad-sub-{version.value}"
    broker.wait_offline(cid)
    assert broker.call(lambda: dict(broker.core.sessions[cid].subscriptions)) == {}


@pytest.mark.parametrize("version", VERSIONS)
def test_malformed_subscribe_filter_closes_paho(broker, version):
    """The same through paho-mqtt (which itself refuses misplaced wildcards, but not a $share filter
    without its topic filter [MQTT-4.8.2-2]): v5 reads DISCONNECT 0x82."""
    c = PahoClient(broker.port, version=version)
    c.client.subscribe("$share/g", 1)
    rc, _ = c.expect_disconnect()
    if version == V5:
        assert rc.value == ReasonCode.PROTOCOL_ERROR
    else:
        assert rc.is_failure
    c.client.loop_stop()


@pytest.mark.parametrize("topic_filter", MALFORMED_FILTERS)
@pytest.mark.parametrize("version", RAW_VERSIONS)
def test_malformed_unsubscribe_filter_closes(broker, version, topic_filter):
    """UNSUBSCRIBE filters follow the same rules ([MQTT-4.7.1-1..3], [MQTT-4.8.2-1/2]): a malformed one
    closes the connection (v5 DISCONNECT 0x82) and nothing in that UNSUBSCRIBE is removed."""
    cid = f"bad-unsub-{version.value}"
    raw = persistent_raw(broker, version, cid)
    raw.send(Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="keep/+", qos=1),)))
    assert raw.recv().reason_codes == (1,)
    raw.send(Unsubscribe(packet_id=2, topic_filters=("keep/+", topic_filter)))
    closed_for_protocol_error(raw)
    broker.wait_offline(cid)
    assert broker.call(lambda: list(broker.core.sessions[cid].subscriptions)) == ["keep/+"]


@pytest.mark.parametrize("version", VERSIONS)
def test_malformed_unsubscribe_filter_closes_paho(broker, version):
    c = PahoClient(broker.port, version=version)
    c.client.unsubscribe("#/a")
    rc, _ = c.expect_disconnect()
    if version == V5:
        assert rc.value == ReasonCode.PROTOCOL_ERROR
    else:
        assert rc.is_failure
    c.client.loop_stop()


def test_unsubscribe_filter_beyond_our_limits_is_no_error(broker):
    """A well formed filter beyond max_topic_levels was never subscribed: UNSUBACK 0x11, still open."""
    raw = RawClient(broker.port)
    raw.connect()
    deep = "/".join(["a"] * 200)
    raw.send(Unsubscribe(packet_id=4, topic_filters=(deep,)))
    assert raw.recv() == UnsubAck(packet_id=4, reason_codes=(ReasonCode.NO_SUBSCRIPTION_EXISTED,))
    raw.send(PingReq())
    assert raw.recv() == PingResp()


def test_unsubscribe(broker):
    """[MQTT-3.10.4-1] after UNSUBSCRIBE nothing more arrives; v5 0x11 when nothing existed."""
    c = PahoClient(broker.port, version=V5)
    c.subscribe("un/x", 1)
    rcs = c.unsubscribe(["un/x", "never"])
    assert [int(r.value) for r in rcs] == [0x00, 0x11]
    p = PahoClient(broker.port, version=V5)
    p.publish("un/x", b"gone", 1)
    c.expect_none()


def test_wildcard_publish_topic_is_rejected(broker):
    """[MQTT-3.3.2-2] a topic name with wildcards: v5 DISCONNECT 0x90."""
    raw = RawClient(broker.port)
    raw.connect()
    raw.send(Publish(topic="a/+", payload=b"x"))
    assert [p.reason_code for p in raw.expect_closed()] == [ReasonCode.TOPIC_NAME_INVALID]


def test_qos2_exactly_once_with_duplicate_publish(broker):
    """[MQTT-4.3.3-10] a resent QoS 2 PUBLISH (DUP) before PUBREL is not delivered twice."""
    sub = PahoClient(broker.port, version=V5)
    sub.subscribe("eo", 2)
    raw = RawClient(broker.port)
    raw.connect()
    raw.send(Publish(topic="eo", payload=b"once", qos=2, packet_id=5))
    assert isinstance(raw.recv(), PubRec)
    raw.send(Publish(topic="eo", payload=b"once", qos=2, packet_id=5, dup=True))
    assert isinstance(raw.recv(), PubRec)
    raw.send(PubRel(packet_id=5))
    assert raw.recv() == PubComp(packet_id=5)
    assert sub.expect().payload == b"once"
    sub.expect_none()


def test_pubrel_unknown_id_v5(broker):
    """PUBREL for an unknown packet id: PUBCOMP with 0x92 (Packet Identifier not found)."""
    raw = RawClient(broker.port)
    raw.connect()
    raw.send(PubRel(packet_id=77))
    assert raw.recv() == PubComp(packet_id=77, reason_code=ReasonCode.PACKET_IDENTIFIER_NOT_FOUND)


def test_puback_no_matching_subscribers_v5(broker):
    """v5 PUBACK says 0x10 when nobody was subscribed."""
    raw = RawClient(broker.port)
    raw.connect()
    raw.send(Publish(topic="nobody/here", payload=b"x", qos=1, packet_id=1))
    ack = raw.recv()
    assert isinstance(ack, PubAck)
    assert (ack.packet_id, ack.reason_code) == (1, ReasonCode.NO_MATCHING_SUBSCRIBERS)
    # push.ack_message_id is on by default: the broker's message id comes back even with no recipient.
    assert [k for k, _ in ack.properties.user_properties] == ["message-id"]


def test_receive_maximum_exceeded(make_broker):
    """[MQTT-3.3.4-7] more unacknowledged QoS 2 PUBLISH than our Receive Maximum: DISCONNECT 0x93
    (section 4.9), with receive_maximum_exceeded = "disconnect"."""
    b = make_broker(mqtt=MqttConfig(receive_maximum=2, receive_maximum_exceeded="disconnect"))
    raw = RawClient(b.port)
    raw.connect()
    for pid in (1, 2, 3):
        raw.send(Publish(topic="rm", payload=b"x", qos=2, packet_id=pid))
    packets = raw.expect_closed()
    assert [p.reason_code for p in packets if isinstance(p, Disconnect)] == [
        ReasonCode.RECEIVE_MAXIMUM_EXCEEDED
    ]
    assert sum(isinstance(p, PubRec) for p in packets) == 2


def test_receive_maximum_exceeded_pauses_by_default(make_broker):
    """By default a v5 client beyond our Receive Maximum is slowed, not disconnected: every QoS 2
    PUBLISH gets its PUBREC and every exchange completes."""
    b = make_broker(mqtt=MqttConfig(receive_maximum=2))
    raw = RawClient(b.port)
    raw.connect()
    burst = (
        encode(Publish(topic="rm", payload=b"x", qos=2, packet_id=pid), ProtocolVersion.MQTT5)
        for pid in (1, 2, 3)
    )
    raw.send(b"".join(burst))
    recs = [raw.recv() for _ in range(3)]
    assert [(type(p), p.packet_id) for p in recs] == [(PubRec, pid) for pid in (1, 2, 3)]
    for pid in (1, 2, 3):
        raw.send(PubRel(packet_id=pid))
        assert raw.recv() == PubComp(packet_id=pid)
    raw.close()


def test_outgoing_inflight_respects_client_receive_maximum(broker):
    """[MQTT-3.3.4-9] never more unacknowledged QoS>0 PUBLISH than the client's Receive Maximum."""
    raw = RawClient(broker.port)
    raw.connect("rm-client", properties=Properties(receive_maximum=2))
    raw.send(Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="w", qos=1),)))
    assert isinstance(raw.recv(), SubAck)
    pub = PahoClient(broker.port, version=V5)
    for i in range(5):
        pub.publish("w", str(i).encode(), 1)
    first = [raw.recv(), raw.recv()]
    with pytest.raises(AssertionError):
        raw.recv(timeout=0.4)  # the window is full
    raw.send(PubAck(packet_id=first[0].packet_id))
    third = raw.recv()
    assert [p.payload for p in [*first, third]] == [b"0", b"1", b"2"]


def test_topic_alias_from_client(broker):
    """[MQTT-3.3.2-12] a client may set a topic alias and then publish with it alone."""
    sub = PahoClient(broker.port, version=V5)
    sub.subscribe("alias/t", 0)
    raw = RawClient(broker.port)
    raw.connect()
    raw.send(Publish(topic="alias/t", payload=b"1", properties=Properties(topic_alias=1)))
    raw.send(Publish(topic="", payload=b"2", properties=Properties(topic_alias=1)))
    got = sub.expect_n(2)
    assert [(m.topic, m.payload) for m in got] == [("alias/t", b"1"), ("alias/t", b"2")]


def test_topic_alias_above_maximum(make_broker):
    """[MQTT-3.3.2-10] a topic alias above our maximum: DISCONNECT 0x94."""
    b = make_broker(mqtt=MqttConfig(topic_alias_maximum=2))
    raw = RawClient(b.port)
    raw.connect()
    raw.send(Publish(topic="t", payload=b"x", properties=Properties(topic_alias=3)))
    assert [p.reason_code for p in raw.expect_closed()] == [ReasonCode.TOPIC_ALIAS_INVALID]


def test_unknown_topic_alias(broker):
    """An alias that was never set, with an empty topic: protocol error 0x82."""
    raw = RawClient(broker.port)
    raw.connect()
    raw.send(Publish(topic="", payload=b"x", properties=Properties(topic_alias=1)))
    assert [p.reason_code for p in raw.expect_closed()] == [ReasonCode.PROTOCOL_ERROR]


def test_v5_properties_forwarded(broker):
    """User properties, content type, payload format, response topic and correlation data pass through."""
    sub = PahoClient(broker.port, version=V5)
    sub.subscribe("props", 1)
    pub = PahoClient(broker.port, version=V5)
    p = props(
        PayloadFormatIndicator=1,
        ContentType="text/plain",
        ResponseTopic="reply/here",
        CorrelationData=b"\x01\x02",
    )
    p.UserProperty = [("a", "1"), ("b", "2"), ("a", "3")]
    pub.publish("props", "héllo".encode(), 1, properties=p)
    got = sub.expect().properties
    assert got.PayloadFormatIndicator == 1
    assert got.ContentType == "text/plain"
    assert got.ResponseTopic == "reply/here"
    assert got.CorrelationData == b"\x01\x02"
    assert got.UserProperty == [("a", "1"), ("b", "2"), ("a", "3")]


def test_message_expiry_forwarded_and_enforced(broker):
    """[MQTT-3.3.2-5] expired queued messages are dropped; [MQTT-3.3.2-6] the remaining interval is sent."""
    sub = PahoClient(broker.port, "exp-sub", version=V5, clean=True, session_expiry=60)
    sub.subscribe("exp/#", 1)
    live_pub = PahoClient(broker.port, version=V5)
    live_pub.publish("exp/live", b"l", 1, properties=props(MessageExpiryInterval=30))
    assert sub.expect().properties.MessageExpiryInterval in (29, 30)
    sub.disconnect()
    broker.wait_offline("exp-sub")
    live_pub.publish("exp/short", b"s", 1, properties=props(MessageExpiryInterval=1))
    live_pub.publish("exp/long", b"L", 1, properties=props(MessageExpiryInterval=100))
    time.sleep(1.3)
    back = PahoClient(broker.port, "exp-sub", version=V5, clean=False, session_expiry=60)
    msg = back.expect()
    assert msg.payload == b"L"
    assert 95 <= msg.properties.MessageExpiryInterval <= 100
    back.expect_none()


def test_client_maximum_packet_size_respected(broker):
    """[MQTT-3.1.2-25] a message larger than the client's Maximum Packet Size is not sent to it."""
    small = PahoClient(broker.port, version=V5, connect_properties=props("CONNECT", MaximumPacketSize=100))
    small.subscribe("big", 1)
    pub = PahoClient(broker.port, version=V5)
    pub.publish("big", b"x" * 500, 1)
    pub.publish("big", b"fits", 1)
    assert small.expect().payload == b"fits"
    small.expect_none()


def test_inbound_packet_too_large(make_broker):
    """A packet above our maximum packet size: DISCONNECT 0x95 [MQTT-3.2.2-15]."""
    b = make_broker(mqtt=MqttConfig(max_packet_size=1000))
    raw = RawClient(b.port)
    raw.connect()
    raw.send(Publish(topic="t", payload=b"x" * 2000))
    assert [p.reason_code for p in raw.expect_closed()] == [ReasonCode.PACKET_TOO_LARGE]


def test_qos_above_maximum_qos(make_broker):
    """[MQTT-3.2.2-11] PUBLISH above Maximum QoS: DISCONNECT 0x9B."""
    b = make_broker(mqtt=MqttConfig(max_qos=1))
    raw = RawClient(b.port)
    raw.connect()
    raw.send(Publish(topic="t", payload=b"x", qos=2, packet_id=1))
    assert [p.reason_code for p in raw.expect_closed()] == [ReasonCode.QOS_NOT_SUPPORTED]


def test_outgoing_qos2_flow_raw(broker):
    """Delivery QoS 2: PUBLISH, PUBREC from the client, PUBREL from us, PUBCOMP [MQTT-4.3.3]."""
    raw = RawClient(broker.port, ProtocolVersion.MQTT311)
    raw.connect("q2-out")
    raw.send(Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="q2", qos=2),)))
    assert raw.recv().reason_codes == (2,)
    pub = PahoClient(broker.port, version=V311)
    pub.publish("q2", b"x", 2)
    p = raw.recv()
    assert isinstance(p, Publish) and p.qos == 2
    raw.send(PubRec(packet_id=p.packet_id))
    assert raw.recv() == PubRel(packet_id=p.packet_id)
    raw.send(PubComp(packet_id=p.packet_id))


# -- 4.3.2 / 4.3.3: the acknowledgement must be the one the flow expects ----------------------


def subscribed_raw(broker, version: ProtocolVersion, client_id: str) -> RawClient:
    raw = persistent_raw(broker, version, client_id)
    raw.send(Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="ack/#", qos=2),)))
    assert raw.recv().reason_codes == (2,)
    return raw


def deliver(broker, raw: RawClient, qos: int) -> Publish:
    broker.run(broker.broker.publish("ack/x", f"q{qos}".encode(), qos=qos))
    got = raw.recv()
    assert isinstance(got, Publish) and got.qos == qos
    return got


WRONG_ACKS = [
    pytest.param(1, False, PubRec, id="pubrec-for-qos1"),
    pytest.param(1, False, PubComp, id="pubcomp-for-qos1"),
    pytest.param(2, False, PubAck, id="puback-where-pubrec-is-due"),
    pytest.param(2, False, PubComp, id="pubcomp-where-pubrec-is-due"),
    pytest.param(2, True, PubAck, id="puback-after-our-pubrel"),
]


@pytest.mark.parametrize(("qos", "released", "ack"), WRONG_ACKS)
@pytest.mark.parametrize("version", RAW_VERSIONS)
def test_acknowledgement_of_the_wrong_type_closes(broker, version, qos, released, ack):
    """A QoS 1 PUBLISH is answered with PUBACK ([MQTT-4.3.2-4]; 3.1.1 [MQTT-4.3.2-2]), a QoS 2 one with
    PUBREC and then our PUBREL with PUBCOMP ([MQTT-4.3.3-8], [MQTT-4.3.3-11]; 3.1.1 [MQTT-4.3.3-2]).
    Another ack for a message in flight is a Protocol Error: v5 DISCONNECT 0x82 (section 4.13), 3.1.1
    close [MQTT-4.8.0-1].  In particular a PUBREC for QoS 1 gets no PUBREL."""
    cid = f"wrong-ack-{version.value}"
    raw = subscribed_raw(broker, version, cid)
    publish = deliver(broker, raw, qos)
    pid = publish.packet_id
    assert pid is not None
    if released:
        raw.send(PubRec(packet_id=pid))
        assert raw.recv() == PubRel(packet_id=pid)
    raw.send(ack(packet_id=pid))
    closed_for_protocol_error(raw)
    broker.wait_offline(cid)
    # The message is still owed: the session keeps it in flight for the next connection.
    assert broker.call(lambda: list(broker.core.sessions[cid].inflight)) == [pid]


def test_refusing_pubrec_for_qos1_closes(broker):
    """A v5 PUBREC with a failure code (section 4.3.3) for a QoS 1 message is a Protocol Error too."""
    raw = subscribed_raw(broker, ProtocolVersion.MQTT5, "wrong-ack-refusing")
    publish = deliver(broker, raw, 1)
    assert publish.packet_id is not None
    raw.send(PubRec(packet_id=publish.packet_id, reason_code=ReasonCode.UNSPECIFIED_ERROR))
    closed_for_protocol_error(raw)


@pytest.mark.parametrize("version", RAW_VERSIONS)
def test_wrong_puback_in_a_batch_closes_after_the_good_ones(broker, version):
    """PUBACKs read together are handled as a batch: a good PUBACK completes its message, the PUBACK
    for a QoS 2 message after it closes the connection with 0x82 (a protocol error, not 0x80)."""
    cid = f"wrong-ack-batch-{version.value}"
    raw = subscribed_raw(broker, version, cid)
    first = deliver(broker, raw, 1)
    second = deliver(broker, raw, 2)
    assert first.packet_id is not None and second.packet_id is not None
    acks = (PubAck(packet_id=first.packet_id), PubAck(packet_id=second.packet_id))
    raw.send(b"".join(encode(ack, version) for ack in acks))  # one write: read as one batch
    closed_for_protocol_error(raw)
    broker.wait_offline(cid)
    assert broker.call(lambda: list(broker.core.sessions[cid].inflight)) == [second.packet_id]


@pytest.mark.parametrize("version", RAW_VERSIONS)
def test_acknowledgement_for_an_id_not_in_flight_is_no_error(broker, version):
    """An ack for a packet id not in flight happens after reconnects: PUBACK and PUBCOMP are ignored,
    PUBREC is answered with PUBREL (v5 0x92 Packet Identifier not found), the connection stays."""
    raw = subscribed_raw(broker, version, f"stale-ack-{version.value}")
    raw.send(PubAck(packet_id=901))
    raw.send(PubComp(packet_id=902))
    raw.send(PubRec(packet_id=903))
    not_found = ReasonCode.PACKET_IDENTIFIER_NOT_FOUND if version is ProtocolVersion.MQTT5 else 0
    assert raw.recv() == PubRel(packet_id=903, reason_code=not_found)
    raw.send(PingReq())
    assert raw.recv() == PingResp()


@pytest.mark.parametrize("version", RAW_VERSIONS)
def test_pubrec_repeated_after_our_pubrel_gets_pubrel_again(broker, version):
    """A PUBREC repeated while we wait for PUBCOMP is the right type of ack: PUBREL again, then PUBCOMP."""
    raw = subscribed_raw(broker, version, f"pubrec-twice-{version.value}")
    publish = deliver(broker, raw, 2)
    pid = publish.packet_id
    assert pid is not None
    raw.send(PubRec(packet_id=pid))
    assert raw.recv() == PubRel(packet_id=pid)
    raw.send(PubRec(packet_id=pid))
    assert raw.recv() == PubRel(packet_id=pid)
    raw.send(PubComp(packet_id=pid))
    raw.send(PingReq())
    assert raw.recv() == PingResp()


def test_topic_alias_to_client(broker):
    """[MQTT-3.3.2-11/12] with the client's Topic Alias Maximum, repeated topics go out as an alias alone."""
    raw = RawClient(broker.port)
    raw.connect("alias-rx", properties=Properties(topic_alias_maximum=2))
    raw.send(Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="al/#", qos=1),)))
    assert isinstance(raw.recv(), SubAck)
    pub = PahoClient(broker.port, version=V5)
    for topic in ("al/a", "al/a", "al/b", "al/c", "al/b"):
        pub.publish(topic, topic.encode(), 0)
    got = [raw.recv() for _ in range(5)]
    seen = [(p.topic, p.properties.topic_alias, p.payload) for p in got]
    assert seen == [
        ("al/a", 1, b"al/a"),
        ("", 1, b"al/a"),
        ("al/b", 2, b"al/b"),
        ("al/c", None, b"al/c"),  # no alias left: the full topic
        ("", 2, b"al/b"),
    ]
