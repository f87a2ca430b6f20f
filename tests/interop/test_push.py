"""Push notifications: priority, expiry, quotas, collapse keys and delivery receipts, through real clients.

Every test runs the broker with the SQLite store (the default), so receipts and
queues are the durable ones.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from zanzara import AuthResult, ConnectRequest, DeliveryStatus, ReasonCode
from zanzara.config import Config, MqttConfig, PushConfig, StorageConfig, TopicPriority, TopicTtl
from zanzara.mqtt.codec import encode
from zanzara.mqtt.enums import ProtocolVersion
from zanzara.mqtt.packets import PubAck, Publish, PubRec, Subscribe, Subscription
from zanzara.mqtt.properties import Properties

from brokerthread import BrokerThread
from clients import V5, V311, PahoClient, RawClient, props


def sqlite_config(tmp_path, **sections) -> Config:
    return Config(storage=StorageConfig(backend="sqlite", path=str(tmp_path / "z.db")), **sections)


def away(b: BrokerThread, cid: str, topic: str, version=V5, qos: int = 1) -> None:
    """A device with a persistent session subscribes, then goes offline."""
    c = PahoClient(b.port, cid, version=version, clean=False, session_expiry=3600)
    c.subscribe(topic, qos)
    c.disconnect()
    b.wait_offline(cid)


def back(b: BrokerThread, cid: str, version=V5) -> PahoClient:
    c = PahoClient(b.port, cid, version=version, clean=False, session_expiry=3600)
    assert c.session_present
    return c


def drain(c: PahoClient, quiet: float = 0.6) -> list[bytes]:
    got = []
    try:
        while True:
            got.append(c.expect(timeout=quiet).payload)
    except AssertionError:
        return got


def receipts(b: BrokerThread, message_id: str):
    return b.run(b.broker.receipts(message_id))


def test_priority_order_after_reconnect(tmp_path):
    """The offline backlog is delivered highest priority first, publish order within one priority."""
    rule = TopicPriority(topic="dev/1/alerts/#", priority=9)
    cfg = sqlite_config(tmp_path, push=PushConfig(priority=(rule,)))
    with BrokerThread(cfg) as b:
        away(b, "dev-1", "dev/1/#")
        v5 = PahoClient(b.port, version=V5)
        v3 = PahoClient(b.port, version=V311)
        plan = [("low-a", "0"), ("mid-a", "5"), ("low-b", None), ("top-v5", "200"), ("mid-b", "5")]
        for payload, prio in plan:
            p = props()
            if prio is not None:
                p.UserProperty = ("priority", prio)
            v5.publish("dev/1/news", payload.encode(), 1, properties=p)
        v3.publish("dev/1/alerts/fire", b"rule-9", 1)  # 3.1.1 publisher: priority from the topic rule
        c = back(b, "dev-1")
        assert drain(c) == [b"top-v5", b"rule-9", b"mid-a", b"mid-b", b"low-a", b"low-b"]


@pytest.mark.parametrize("version", [V311, V5])
def test_expired_queued_messages_are_never_delivered(tmp_path, version):
    """v5 message expiry, the topic TTL rule and the default TTL; expired ones get an 'expired' receipt."""
    push = PushConfig(default_ttl=30, ttl=(TopicTtl(topic="dev/2/flash", ttl=1),))
    with BrokerThread(sqlite_config(tmp_path, push=push)) as b:
        away(b, "dev-2", "dev/2/#", version=version)
        pub = PahoClient(b.port, version=version)
        pub.publish("dev/2/flash", b"gone soon", 1)  # TTL rule: 1 s
        if version == V5:
            pub.publish("dev/2/v5", b"v5 short", 1, properties=props(MessageExpiryInterval=1))
        pub.publish("dev/2/slow", b"kept", 1)  # default TTL: 30 s
        flash = b.run(b.broker.publish("dev/2/api", b"api short", qos=1, ttl=1))
        time.sleep(1.3)
        c = back(b, "dev-2", version=version)
        assert drain(c) == [b"kept"]
        got = receipts(b, flash.message_id)
        expected = [("dev-2", DeliveryStatus.EXPIRED, "message expiry")]
        assert [(r.client_id, r.status, r.reason) for r in got] == expected


def test_quota_drops_lowest_priority_then_oldest(tmp_path):
    """max_queued_messages: the lowest priority goes first, then the oldest; each drop is in its receipt."""
    cfg = sqlite_config(tmp_path, mqtt=MqttConfig(max_queued_messages=3))
    with BrokerThread(cfg) as b:
        seen: list[str] = []
        b.call(lambda: b.broker.add_event_listener(lambda e: seen.append(e.reason), "dropped"))
        away(b, "dev-3", "dev/3/#")
        ids = {}
        for payload, prio in [("old-low", 1), ("high", 9), ("new-low", 1), ("mid", 5), ("newest-low", 1)]:
            ids[payload] = b.run(b.broker.publish("dev/3/x", payload, qos=1, priority=prio)).message_id
        c = back(b, "dev-3")
        assert drain(c) == [b"high", b"mid", b"newest-low"]
        for payload in ("old-low", "new-low"):
            (r,) = receipts(b, ids[payload])
            assert (r.status, r.reason) == (DeliveryStatus.DROPPED, "queue full")
            assert r.queued_at is not None and r.finished_at is not None
        (ok,) = receipts(b, ids["high"])
        assert ok.status is DeliveryStatus.ACKNOWLEDGED
        assert ok.queued_at <= ok.sent_at <= ok.acknowledged_at
        time.sleep(0.2)
        assert seen == ["queue full", "queue full"]


def test_max_queued_bytes(tmp_path):
    cfg = sqlite_config(tmp_path, mqtt=MqttConfig(max_queued_bytes=10))
    with BrokerThread(cfg) as b:
        away(b, "dev-4", "dev/4/#")
        for payload in (b"aaaa", b"bbbb", b"cccc"):
            b.run(b.broker.publish("dev/4/x", payload, qos=1))
        assert drain(back(b, "dev-4")) == [b"bbbb", b"cccc"]


def test_collapse_key_replaces_queued_message(tmp_path):
    """A newer message with the same collapse key replaces the queued one (FCM/APNs style)."""
    with BrokerThread(sqlite_config(tmp_path)) as b:
        away(b, "dev-5", "dev/5/#")
        pub = PahoClient(b.port, version=V5)
        for payload in (b"score 1-0", b"other", b"score 2-0"):
            p = props()
            if payload.startswith(b"score"):
                p.UserProperty = ("collapse-key", "match-42")
            pub.publish("dev/5/sport", payload, 1, properties=p)
        first = b.run(b.broker.publish("dev/5/sport", "api 1", qos=1, collapse_key="weather"))
        b.run(b.broker.publish("dev/5/sport", "api 2", qos=1, collapse_key="weather"))
        assert drain(back(b, "dev-5")) == [b"other", b"score 2-0", b"api 2"]
        (r,) = receipts(b, first.message_id)
        assert (r.status, r.reason) == (DeliveryStatus.DROPPED, "collapsed")


def test_receipts_and_message_id_in_puback(tmp_path):
    """v5 publishers get the message id in PUBACK; receipts survive a restart of the broker."""
    path = tmp_path
    with BrokerThread(sqlite_config(path)) as b:
        away(b, "dev-6", "dev/6/#")
        online = PahoClient(b.port, "dev-7", version=V5)
        online.subscribe("dev/6/#", 1)
        pub = PahoClient(b.port, version=V5)
        acks = []
        pub.client.on_publish = lambda _c, _u, _mid, _rc, p: acks.append(p)
        pub.publish("dev/6/hello", b"hi", 1)
        deadline = time.monotonic() + 5
        while not acks and time.monotonic() < deadline:
            time.sleep(0.01)
        message_id = dict(acks[0].UserProperty)["message-id"]
        assert len(message_id) == 26
        online.expect()
        time.sleep(0.2)
        got = {r.client_id: r.status for r in receipts(b, message_id)}
        assert got == {"dev-6": DeliveryStatus.QUEUED, "dev-7": DeliveryStatus.ACKNOWLEDGED}
    with BrokerThread(sqlite_config(path)) as b:
        got = {r.client_id: r.status for r in receipts(b, message_id)}
        assert got == {"dev-6": DeliveryStatus.QUEUED, "dev-7": DeliveryStatus.ACKNOWLEDGED}
        c = back(b, "dev-6")
        assert c.expect().payload == b"hi"
        time.sleep(0.3)
        got = {r.client_id: r.status for r in receipts(b, message_id)}
        assert got["dev-6"] is DeliveryStatus.ACKNOWLEDGED


class DeviceQuota:
    async def authenticate(self, request: ConnectRequest) -> AuthResult | None:
        if request.client.client_id == "tiny-device":
            return AuthResult(max_queued_messages=2)
        return None


def test_per_device_quota_from_the_auth_hook(tmp_path):
    """The authentication hook can give one device its own queue quota."""
    with BrokerThread(sqlite_config(tmp_path), setup=lambda br: br.add_authenticator(DeviceQuota())) as b:
        away(b, "tiny-device", "dev/8/#")
        away(b, "big-device", "dev/8/#")
        for i in range(5):
            b.run(b.broker.publish("dev/8/x", str(i), qos=1))
        assert drain(back(b, "tiny-device")) == [b"3", b"4"]
        assert len(drain(back(b, "big-device"))) == 5


def test_per_device_quota_survives_a_restart_while_the_device_is_away(tmp_path):
    """The hook's quota is kept with the session: messages queued after a restart, before the
    device comes back (and before the hook is asked again), are held to it."""
    hook = lambda br: br.add_authenticator(DeviceQuota())  # noqa: E731
    with BrokerThread(sqlite_config(tmp_path), setup=hook) as b:
        away(b, "tiny-device", "dev/10/#")
    with BrokerThread(sqlite_config(tmp_path), setup=hook) as b:
        for i in range(5):
            b.run(b.broker.publish("dev/10/x", str(i), qos=1))
        assert drain(back(b, "tiny-device")) == [b"3", b"4"]


def test_bad_priority_is_refused_by_the_api(tmp_path):
    with BrokerThread(sqlite_config(tmp_path)) as b, pytest.raises(ValueError):
        b.run(b.broker.publish("x", b"y", priority=300))
    assert ReasonCode.SUCCESS == 0


def test_receipts_are_purged_after_the_retention(tmp_path):
    """Receipts are kept for push.receipt_retention after their last update, then purged."""
    with BrokerThread(sqlite_config(tmp_path, push=PushConfig(receipt_retention=1.0))) as b:
        device = PahoClient(b.port, "dev-9", version=V5, clean=False, session_expiry=3600)
        device.subscribe("dev/9/#", 1)
        first = b.run(b.broker.publish("dev/9/a", b"1", qos=1)).message_id
        assert device.expect().payload == b"1"
        deadline = time.monotonic() + 5
        while [r.status for r in receipts(b, first)] != [DeliveryStatus.ACKNOWLEDGED]:
            assert time.monotonic() < deadline, receipts(b, first)
            time.sleep(0.05)
        # Gone once a full retention has passed since the acknowledgement (purges run every 0.1 s).
        while receipts(b, first):
            assert time.monotonic() < deadline, "receipt outlived its retention"
            time.sleep(0.05)
        # A newer message's receipt is still there while the older one is purged.
        second = b.run(b.broker.publish("dev/9/b", b"2", qos=1)).message_id
        assert device.expect().payload == b"2"
        time.sleep(0.3)
        assert [r.status for r in receipts(b, second)] == [DeliveryStatus.ACKNOWLEDGED]


def test_a_receipt_says_when_a_v5_device_refused_the_message(tmp_path):
    """A PUBACK or PUBREC with a reason code of 0x80 or more ends the flow (MQTT 5 sections 3.4.2.1,
    3.5.2.1, 4.3.3): the receipt is "acknowledged" and gives the code, and nothing is resent."""
    with BrokerThread(sqlite_config(tmp_path)) as b:
        raw = RawClient(b.port, ProtocolVersion.MQTT5)
        raw.connect("picky-device")
        subs = (Subscription(topic_filter="picky/1", qos=1), Subscription(topic_filter="picky/2", qos=2))
        raw.send(Subscribe(packet_id=1, subscriptions=subs))
        raw.recv()
        one = b.run(b.broker.publish("picky/1", b"no thanks", qos=1)).message_id
        two = b.run(b.broker.publish("picky/2", b"not this either", qos=2)).message_id
        first, second = raw.recv(), raw.recv()
        assert (first.qos, second.qos) == (1, 2)
        raw.send(PubAck(packet_id=first.packet_id, reason_code=ReasonCode.NOT_AUTHORIZED))
        raw.send(PubRec(packet_id=second.packet_id, reason_code=ReasonCode.UNSPECIFIED_ERROR))
        with pytest.raises(AssertionError, match="none came"):
            raw.recv(timeout=0.3)  # no PUBREL for the refused PUBREC, no resend
        [r1] = receipts(b, one)
        [r2] = receipts(b, two)
        assert (r1.status, r1.reason) == (
            DeliveryStatus.ACKNOWLEDGED,
            "PUBACK reason code 0x87 (not authorized)",
        )
        assert (r2.status, r2.reason) == (
            DeliveryStatus.ACKNOWLEDGED,
            "PUBREC reason code 0x80 (unspecified error)",
        )
        assert r1.acknowledged_at is not None and r2.acknowledged_at is not None
        raw.close()


# --- the message id in PUBACK/PUBREC (push.ack_message_id) ------------------------------------------


def memory_config(**push: bool) -> Config:
    return Config(storage=StorageConfig(backend="memory"), push=PushConfig(**push))


def acks_of(b: BrokerThread, **connect: int) -> tuple[PubAck, PubRec]:
    """The PUBACK and PUBREC a raw v5 publisher gets for a QoS 1 and a QoS 2 PUBLISH."""
    raw = RawClient(b.port, ProtocolVersion.MQTT5)
    assert raw.connect(properties=Properties(**connect)).reason_code == 0
    raw.send(Publish(topic="ack/id", payload=b"1", qos=1, packet_id=1))
    raw.send(Publish(topic="ack/id", payload=b"2", qos=2, packet_id=2))
    puback, pubrec = raw.recv(), raw.recv()
    assert isinstance(puback, PubAck) and isinstance(pubrec, PubRec)
    assert (puback.packet_id, pubrec.packet_id) == (1, 2)
    raw.close()
    return puback, pubrec


def message_ids(*acks: PubAck | PubRec) -> list[list[str]]:
    return [[k for k, _ in ack.properties.user_properties] for ack in acks]


@pytest.mark.parametrize("track", [True, False], ids=["tracked", "untracked"])
def test_message_id_in_acks_by_default(track: bool) -> None:
    """push.ack_message_id (default on) is its own setting: the id is sent with or without receipts."""
    with BrokerThread(memory_config(track_deliveries=track)) as b:
        puback, pubrec = acks_of(b)
        assert message_ids(puback, pubrec) == [["message-id"], ["message-id"]]
        assert len(puback.properties.user_properties[0][1]) == 26  # a ULID


def test_ack_message_id_off_gives_the_short_acks() -> None:
    """push.ack_message_id = false: PUBACK/PUBREC carry no properties (a 2-4 byte body)."""
    with BrokerThread(memory_config(ack_message_id=False)) as b:
        puback, pubrec = acks_of(b)
        no_match = ReasonCode.NO_MATCHING_SUBSCRIBERS
        assert (puback, pubrec) == (
            PubAck(packet_id=1, reason_code=no_match),
            PubRec(packet_id=2, reason_code=no_match),
        )
        assert len(encode(puback, ProtocolVersion.MQTT5)) == 4 + 1  # fixed header, packet id, reason code


def test_no_message_id_without_problem_information() -> None:
    """[MQTT-3.1.2-29] Request Problem Information 0: no User Property on any packet but PUBLISH, CONNACK
    and DISCONNECT, so no message id; the acknowledgements themselves still come."""
    with BrokerThread(memory_config()) as b:
        puback, pubrec = acks_of(b, request_problem_information=0)
        assert message_ids(puback, pubrec) == [[], []]


def test_no_message_id_without_problem_information_paho() -> None:
    """The same through paho-mqtt: its on_publish gets the PUBACK's properties."""
    with BrokerThread(memory_config()) as b:
        for wanted, expected in ((1, ["message-id"]), (0, [])):
            connect = props("CONNECT", RequestProblemInformation=wanted)
            c = PahoClient(b.port, version=V5, connect_properties=connect)
            acked: list[Any] = []
            c.client.on_publish = lambda _c, _u, _mid, _rc, p, acked=acked: acked.append(p)
            c.publish("ack/paho", b"x", 1)  # returns once acknowledged: on_publish has run
            assert [k for k, _ in getattr(acked[0], "UserProperty", [])] == expected
            c.disconnect()


def test_no_message_id_beyond_the_client_maximum_packet_size() -> None:
    """[MQTT-3.4.2-3] / [MQTT-3.5.2-3] a User Property is not sent where it would make the PUBACK or
    PUBREC exceed the client's Maximum Packet Size: the ack goes without it (room for it: with it)."""
    with BrokerThread(memory_config()) as b:
        puback, pubrec = acks_of(b, maximum_packet_size=20)
        assert message_ids(puback, pubrec) == [[], []]
        puback, pubrec = acks_of(b, maximum_packet_size=100)
        assert message_ids(puback, pubrec) == [["message-id"], ["message-id"]]
        assert 20 < len(encode(puback, ProtocolVersion.MQTT5)) <= 100
