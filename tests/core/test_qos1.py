"""QoS 1, at least once, both ways (MQTT 5.0 section 4.3.2; 3.1.1 section 4.3.2).

From the client: PUBLISH in, PUBACK out.  To the client: PUBLISH out with a
packet id, kept in flight until its PUBACK, resent with DUP on a resumed
session (4.4), within the client's Receive Maximum and our window (4.9), the
rest waiting in the session queue.  Message expiry (3.3.2.3.3) applies to what waits.
"""

from __future__ import annotations

import pytest

from zanzara.config import PushConfig
from zanzara.core import Core
from zanzara.hooks import ClientInfo
from zanzara.mqtt.enums import ProtocolVersion, ReasonCode
from zanzara.mqtt.packets import PubAck, PubComp, Publish, PubRec
from zanzara.mqtt.properties import Properties
from zanzara.session import DeliveryStatus

from .conftest import (
    RC,
    V5,
    V311,
    CoreFactory,
    FakeScheduler,
    both_versions,
    connect,
    disconnect_code,
    drop,
    ids,
    message,
    publish,
    receive,
    sent,
    subscribe,
)


def persistent(version: ProtocolVersion) -> dict[str, object]:
    """CONNECT settings for a session that outlives its connection, in either version."""
    if version is V5:
        return {"version": V5, "clean_start": False, "session_expiry_interval": 3600}
    return {"version": V311, "clean_start": False}


class Refuses:
    """A publish authorizer that refuses one topic."""

    def __init__(self, topic: str) -> None:
        self.topic = topic

    async def authorize_publish(
        self, client: ClientInfo, topic: str, qos: int, retain: bool
    ) -> ReasonCode | None:
        return RC.NOT_AUTHORIZED if topic == self.topic else None


class TestFromTheClient_4_3_2:
    def test_puback_with_the_packet_id_v311(self, core: Core) -> None:
        """3.1.1 [MQTT-4.3.2-2] the receiver answers PUBACK with the PUBLISH's packet id."""
        pub = connect(core, "p", version=V311)
        publish(core, pub, "t", qos=1, packet_id=7)
        assert sent(pub.link) == [PubAck(packet_id=7)]

    def test_puback_with_the_packet_id_v5(self, make_core: CoreFactory) -> None:
        """[MQTT-4.3.2-4] PUBACK with the packet id; 0x10 No matching subscribers when none matched."""
        core = make_core(push=PushConfig(ack_message_id=False))
        pub = connect(core, "p")
        publish(core, pub, "t", qos=1, packet_id=7)
        assert sent(pub.link) == [PubAck(packet_id=7, reason_code=RC.NO_MATCHING_SUBSCRIBERS)]
        sub = connect(core, "s")
        subscribe(core, sub, "t")
        publish(core, pub, "t", qos=1, packet_id=8)
        assert sent(pub.link) == [PubAck(packet_id=8)]

    def test_puback_tells_the_message_id_v5(self, core: Core) -> None:
        """[push] ack_message_id: a v5 PUBACK carries the id the delivery receipts are kept under."""
        pub = connect(core, "p")
        publish(core, pub, "t", qos=1, packet_id=7)
        [ack] = sent(pub.link)
        assert isinstance(ack, PubAck)
        [(key, value)] = ack.properties.user_properties
        assert key == "message-id"
        assert value

    @both_versions
    def test_delivered_at_the_lower_of_the_two_qos(self, core: Core, version: ProtocolVersion) -> None:
        """[MQTT-3.8.4-8] the QoS sent is the minimum of the published QoS and the granted QoS."""
        low = connect(core, "low", version=version)
        high = connect(core, "high", version=version)
        subscribe(core, low, "t", qos=0)
        subscribe(core, high, "t", qos=2)
        pub = connect(core, "p", version=version)
        publish(core, pub, "t", b"x", qos=1)
        assert sent(low.link) == [message("t", b"x")]
        assert sent(high.link) == [message("t", b"x", qos=1, packet_id=1)]

    @both_versions
    def test_refused_publish_is_acknowledged_not_delivered(
        self, core: Core, version: ProtocolVersion
    ) -> None:
        """5.0 section 3.4.2.1: PUBACK 0x87 Not authorized; 3.1.1 cannot say so, acknowledges and drops it."""
        core.add_publish_authorizer(Refuses("secret"))
        sub = connect(core, "s", version=version)
        subscribe(core, sub, "#", qos=1)
        pub = connect(core, "p", version=version)
        publish(core, pub, "secret", qos=1, packet_id=3)
        publish(core, pub, "open", b"ok", qos=1, packet_id=4)
        acks = sent(pub.link)
        assert ids(acks) == [3, 4]
        assert [a.reason_code for a in acks] == [RC.NOT_AUTHORIZED if version is V5 else 0, 0]  # type: ignore[union-attr]
        assert sent(sub.link) == [message("open", b"ok", qos=1, packet_id=1)]


class TestToTheClient_4_3_2:
    @both_versions
    def test_publish_has_a_fresh_packet_id_and_no_dup(self, core: Core, version: ProtocolVersion) -> None:
        """[MQTT-2.2.1-3] a non-zero packet id not in use; [MQTT-4.3.2-2] DUP 0 on first delivery."""
        sub = connect(core, "s", version=version)
        subscribe(core, sub, "t", qos=1)
        for payload in (b"1", b"2", b"3"):
            core.publish("t", payload, qos=1)
        assert sent(sub.link) == [
            message("t", bytes([c]), qos=1, packet_id=i) for i, c in enumerate(b"123", 1)
        ]

    @both_versions
    def test_in_flight_until_its_puback(self, core: Core, version: ProtocolVersion) -> None:
        """[MQTT-4.3.2-3] the message stays unacknowledged until its PUBACK; then the id is free."""
        sub = connect(core, "s", version=version)
        subscribe(core, sub, "t", qos=1)
        core.publish("t", b"x", qos=1)
        sent(sub.link)
        assert sub.session.inflight[1].status is DeliveryStatus.SENT
        receive(core, sub, PubAck(packet_id=1))
        assert sub.session.inflight == {}
        assert sent(sub.link) == []
        assert core.stats.messages_sent == 1

    def test_puback_for_an_id_not_in_flight_is_ignored(self, core: Core) -> None:
        """A PUBACK for nothing in flight (a resend after a reconnect) is not an error."""
        sub = connect(core, "s")
        receive(core, sub, PubAck(packet_id=42))
        assert sent(sub.link) == []
        assert not sub.link.closed  # type: ignore[attr-defined]

    @pytest.mark.parametrize("wrong", [PubRec(packet_id=1), PubComp(packet_id=1)], ids=["PUBREC", "PUBCOMP"])
    def test_wrong_ack_is_a_protocol_error_v5(self, core: Core, wrong: PubRec | PubComp) -> None:
        """[MQTT-4.3.2-4] a QoS 1 PUBLISH is answered by PUBACK: anything else is DISCONNECT 0x82 (4.13)."""
        sub = connect(core, "s")
        subscribe(core, sub, "t", qos=1)
        core.publish("t", b"x", qos=1)
        sent(sub.link)
        receive(core, sub, wrong)
        assert disconnect_code(sent(sub.link)) == RC.PROTOCOL_ERROR
        assert sub.link.closed  # type: ignore[attr-defined]

    def test_wrong_ack_closes_the_connection_v311(self, core: Core) -> None:
        """3.1.1 [MQTT-4.8.0-1] a protocol violation closes the connection (nothing to send)."""
        sub = connect(core, "s", version=V311)
        subscribe(core, sub, "t", qos=1)
        core.publish("t", b"x", qos=1)
        sent(sub.link)
        receive(core, sub, PubRec(packet_id=1))
        assert sent(sub.link) == []
        assert sub.link.closed  # type: ignore[attr-defined]

    def test_acks_before_a_wrong_one_still_count(self, core: Core) -> None:
        """PUBACKs read with a wrong ack: those before it complete their messages."""
        sub = connect(core, "s")
        subscribe(core, sub, "t", qos=2)
        core.publish("t", b"1", qos=1)
        core.publish("t", b"2", qos=2)
        sent(sub.link)
        receive(core, sub, PubAck(packet_id=1), PubAck(packet_id=2))
        assert list(sub.session.inflight) == [2]
        assert disconnect_code(sent(sub.link)) == RC.PROTOCOL_ERROR

    def test_puback_with_an_error_code_ends_the_delivery(self, core: Core) -> None:
        """[MQTT-4.4.0-2] a PUBACK of 0x80 or more acknowledges: the message is not sent again."""
        sub = connect(core, "s", **persistent(V5))  # type: ignore[arg-type]
        subscribe(core, sub, "t", qos=1)
        core.publish("t", b"x", qos=1)
        sent(sub.link)
        receive(core, sub, PubAck(packet_id=1, reason_code=RC.IMPLEMENTATION_SPECIFIC_ERROR))
        assert sub.session.inflight == {}
        drop(core, sub)
        again = connect(core, "s", **persistent(V5))  # type: ignore[arg-type]
        assert sent(again.link) == []


class TestResend_4_4:
    @both_versions
    def test_unacknowledged_publish_resent_with_dup(self, core: Core, version: ProtocolVersion) -> None:
        """[MQTT-4.4.0-1] on a resumed session unacknowledged PUBLISH go again with their packet ids.

        [MQTT-3.3.1-1] DUP is 1 on a re-delivery. 3.1.1 [MQTT-4.4.0-1] the same.
        """
        sub = connect(core, "s", **persistent(version))  # type: ignore[arg-type]
        subscribe(core, sub, "t", qos=1)
        core.publish("t", b"1", qos=1)
        core.publish("t", b"2", qos=1)
        receive(core, sub, PubAck(packet_id=1))
        assert ids(sent(sub.link)) == [1, 2]
        drop(core, sub)
        again = connect(core, "s", **persistent(version))  # type: ignore[arg-type]
        assert again.link.connack is not None
        assert again.link.connack.session_present
        assert sent(again.link) == [message("t", b"2", qos=1, packet_id=2, dup=True)]
        receive(core, again, PubAck(packet_id=2))
        assert again.session.inflight == {}

    def test_queued_while_away_follows_the_resends(self, core: Core) -> None:
        """Messages that arrived while the client was away are delivered after the resends, fresh."""
        sub = connect(core, "s", **persistent(V5))  # type: ignore[arg-type]
        subscribe(core, sub, "t", qos=1)
        core.publish("t", b"1", qos=1)
        sent(sub.link)
        drop(core, sub)
        core.publish("t", b"2", qos=1)
        assert core.sessions["s"].queued == 1
        again = connect(core, "s", **persistent(V5))  # type: ignore[arg-type]
        assert sent(again.link) == [
            message("t", b"1", qos=1, packet_id=1, dup=True),
            message("t", b"2", qos=1, packet_id=2),
        ]

    @both_versions
    def test_not_resent_to_a_new_session(self, core: Core, version: ProtocolVersion) -> None:
        """[MQTT-3.1.2-4] Clean Start 1 discards the session, with what it had in flight."""
        sub = connect(core, "s", **persistent(version))  # type: ignore[arg-type]
        subscribe(core, sub, "t", qos=1)
        core.publish("t", b"1", qos=1)
        sent(sub.link)
        drop(core, sub)
        again = connect(core, "s", version=version, clean_start=True)
        assert sent(again.link) == []
        assert core.stats.messages_dropped == 1

    def test_qos0_is_not_kept_for_an_absent_client(self, core: Core) -> None:
        """QoS 0 is at most once: a disconnected session does not queue it (section 4.3.1)."""
        sub = connect(core, "s", **persistent(V5))  # type: ignore[arg-type]
        subscribe(core, sub, "t", qos=1)
        drop(core, sub)
        core.publish("t", b"0", qos=0)
        again = connect(core, "s", **persistent(V5))  # type: ignore[arg-type]
        assert sent(again.link) == []


class TestWindow_4_9:
    def test_client_receive_maximum_caps_what_is_in_flight(self, core: Core) -> None:
        """[MQTT-3.3.4-9] no more unacknowledged QoS 1/2 PUBLISH than the client's Receive Maximum.

        The rest waits in the session queue and goes, in order, as PUBACKs free the window.
        """
        sub = connect(core, "s", receive_maximum=2)
        subscribe(core, sub, "t", qos=1)
        for n in range(5):
            core.publish("t", bytes([48 + n]), qos=1)
        assert [p.payload for p in sent(sub.link)] == [b"0", b"1"]  # type: ignore[union-attr]
        assert sub.session.queued == 3
        receive(core, sub, PubAck(packet_id=1))
        assert sent(sub.link) == [message("t", b"2", qos=1, packet_id=3)]
        receive(core, sub, PubAck(packet_id=2), PubAck(packet_id=3))
        assert [p.payload for p in sent(sub.link)] == [b"3", b"4"]  # type: ignore[union-attr]
        assert sub.session.queued == 0

    def test_qos0_is_not_held_back_by_the_window(self, core: Core) -> None:
        """[MQTT-3.3.4-10] the server must not delay QoS 0 PUBLISH because of the inflight limit."""
        sub = connect(core, "s", receive_maximum=1)
        subscribe(core, sub, "t", qos=1)
        core.publish("t", b"1", qos=1)
        core.publish("t", b"2", qos=1)
        core.publish("t", b"3", qos=0)
        assert sent(sub.link) == [message("t", b"1", qos=1, packet_id=1), message("t", b"3")]

    def test_our_window_caps_it_too(self, make_core: CoreFactory) -> None:
        """max_inflight_messages: our own window, whatever the client's Receive Maximum (3.1.1 has none)."""
        core = make_core(max_inflight_messages=2)
        sub = connect(core, "s", version=V311)
        subscribe(core, sub, "t", qos=1)
        for n in range(3):
            core.publish("t", bytes([48 + n]), qos=1)
        assert ids(sent(sub.link)) == [1, 2]
        receive(core, sub, PubAck(packet_id=2))
        assert sent(sub.link) == [message("t", b"2", qos=1, packet_id=3)]

    def test_a_congested_socket_holds_qos1_and_drops_qos0(self, core: Core) -> None:
        """A full socket: QoS 1/2 wait in the session queue until it drains, QoS 0 is dropped (counted)."""
        sub = connect(core, "s")
        subscribe(core, sub, "t", qos=1)
        sub.link.congested = True
        core.publish("t", b"held", qos=1)
        core.publish("t", b"lost", qos=0)
        assert sent(sub.link) == []
        assert core.stats.slow_subscriber_drops == 1
        assert sub.messages_dropped == 1
        sub.link.congested = False
        core.pump(sub)
        assert sent(sub.link) == [message("t", b"held", qos=1, packet_id=1)]

    def test_queue_overflow_drops_the_oldest(self, make_core: CoreFactory) -> None:
        """max_queued_messages bounds the queue; the oldest of the lowest priority goes first."""
        core = make_core(max_queued_messages=2)
        sub = connect(core, "s", **persistent(V5))  # type: ignore[arg-type]
        subscribe(core, sub, "t", qos=1)
        drop(core, sub)
        for n in range(3):
            core.publish("t", bytes([48 + n]), qos=1)
        assert core.stats.messages_dropped == 1
        again = connect(core, "s", **persistent(V5))  # type: ignore[arg-type]
        assert [p.payload for p in sent(again.link)] == [b"1", b"2"]  # type: ignore[union-attr]


class TestMessageExpiry_3_3_2_3_3:
    def test_expired_while_queued_is_not_delivered(self, core: Core, scheduler: FakeScheduler) -> None:
        """[MQTT-3.3.2-5] a message whose expiry passed before delivery started is not delivered."""
        sub = connect(core, "s", **persistent(V5))  # type: ignore[arg-type]
        subscribe(core, sub, "t", qos=1)
        drop(core, sub)
        pub = connect(core, "p")
        publish(core, pub, "t", b"short", qos=1, message_expiry_interval=10)
        publish(core, pub, "t", b"long", qos=1, message_expiry_interval=100)
        scheduler.advance(30)
        again = connect(core, "s", **persistent(V5))  # type: ignore[arg-type]
        [delivered] = sent(again.link)
        assert isinstance(delivered, Publish)
        assert delivered.payload == b"long"
        # [MQTT-3.3.2-6] the expiry forwarded is what is left of it.
        assert delivered.properties == Properties(message_expiry_interval=70)
        assert core.stats.messages_expired == 1


class TestMaximumPacketSize_3_1_2_25:
    def test_too_large_is_discarded_as_if_delivered(self, core: Core) -> None:
        """[MQTT-3.1.2-25] a PUBLISH over the client's Maximum Packet Size is discarded, as if sent.

        [MQTT-3.1.2-24] it is never sent; it holds no place in the window and is counted as dropped.
        """
        sub = connect(core, "s", maximum_packet_size=64, receive_maximum=1)
        subscribe(core, sub, "t", qos=1)
        core.publish("t", b"x" * 100, qos=1)
        core.publish("t", b"y" * 100, qos=0)
        core.publish("t", b"small", qos=1)
        assert sent(sub.link) == [message("t", b"small", qos=1, packet_id=2)]
        assert core.stats.messages_dropped == 1
