"""QoS 2, exactly once, both ways (MQTT 5.0 section 4.3.3; 3.1.1 section 4.3.3).

From the client: PUBLISH in, PUBREC out, PUBREL in, PUBCOMP out; a resent
PUBLISH is acknowledged again but not delivered twice.  To the client:
PUBLISH out, PUBREC in, PUBREL out, PUBCOMP in; after a reconnect the PUBLISH
is resent until a PUBREC came, the PUBREL after (4.4).
"""

from __future__ import annotations

import pytest

from zanzara.config import PushConfig
from zanzara.core import Core
from zanzara.hooks import ClientInfo
from zanzara.mqtt.enums import ProtocolVersion, ReasonCode
from zanzara.mqtt.packets import PubAck, PubComp, Publish, PubRec, PubRel
from zanzara.session import DeliveryStatus

from .conftest import (
    RC,
    V5,
    V311,
    CoreFactory,
    both_versions,
    connect,
    disconnect_code,
    drop,
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


@pytest.fixture
def quiet(make_core: CoreFactory) -> Core:
    """A core whose v5 acks carry no message-id property, so they compare as plain packets."""
    return make_core(push=PushConfig(ack_message_id=False))


def not_found(version: ProtocolVersion) -> int:
    """0x92 Packet Identifier not found (5.0); 3.1.1 acks have no reason code."""
    return RC.PACKET_IDENTIFIER_NOT_FOUND if version is V5 else 0


class TestFromTheClient_4_3_3:
    @both_versions
    def test_pubrec_pubrel_pubcomp(self, quiet: Core, version: ProtocolVersion) -> None:
        """[MQTT-4.3.3-8] PUBREC with the packet id; [MQTT-4.3.3-11] PUBCOMP answers PUBREL.

        3.1.1 [MQTT-4.3.3-2].  The message is delivered once, on PUBLISH.
        """
        sub = connect(quiet, "s", version=version)
        subscribe(quiet, sub, "t", qos=2)
        pub = connect(quiet, "p", version=version)
        publish(quiet, pub, "t", b"x", qos=2, packet_id=9)
        assert sent(pub.link) == [PubRec(packet_id=9)]
        assert sent(sub.link) == [message("t", b"x", qos=2, packet_id=1)]
        receive(quiet, pub, PubRel(packet_id=9))
        assert sent(pub.link) == [PubComp(packet_id=9)]
        assert pub.session.incoming_qos2 == set()

    @both_versions
    def test_resent_publish_is_not_delivered_twice(self, quiet: Core, version: ProtocolVersion) -> None:
        """[MQTT-4.3.3-10] until PUBREL, the same packet id gets PUBREC again and no second delivery.

        3.1.1 [MQTT-4.3.3-2] "MUST NOT cause duplicate messages to be delivered".
        """
        sub = connect(quiet, "s", version=version)
        subscribe(quiet, sub, "t", qos=2)
        pub = connect(quiet, "p", version=version)
        publish(quiet, pub, "t", b"x", qos=2, packet_id=9)
        receive(quiet, pub, Publish(topic="t", payload=b"x", qos=2, packet_id=9, dup=True))
        assert sent(pub.link) == [PubRec(packet_id=9), PubRec(packet_id=9)]
        assert len(sent(sub.link)) == 1

    def test_packet_id_is_new_after_pubcomp(self, quiet: Core) -> None:
        """[MQTT-4.3.3-12] after PUBCOMP a PUBLISH with the same packet id is a new message."""
        sub = connect(quiet, "s")
        subscribe(quiet, sub, "t", qos=0)
        pub = connect(quiet, "p")
        publish(quiet, pub, "t", b"1", qos=2, packet_id=9)
        receive(quiet, pub, PubRel(packet_id=9))
        publish(quiet, pub, "t", b"2", qos=2, packet_id=9)
        assert sent(sub.link) == [message("t", b"1"), message("t", b"2")]

    @both_versions
    def test_released_id_survives_a_reconnect(self, quiet: Core, version: ProtocolVersion) -> None:
        """[MQTT-4.1.0-1] the incoming QoS 2 ids are session state: a resend after reconnecting is not new."""
        sub = connect(quiet, "s", version=version)
        subscribe(quiet, sub, "t", qos=2)
        pub = connect(quiet, "p", **persistent(version))  # type: ignore[arg-type]
        publish(quiet, pub, "t", b"x", qos=2, packet_id=9)
        drop(quiet, pub)
        again = connect(quiet, "p", **persistent(version))  # type: ignore[arg-type]
        receive(quiet, again, Publish(topic="t", payload=b"x", qos=2, packet_id=9, dup=True))
        assert sent(again.link) == [PubRec(packet_id=9)]
        assert len(sent(sub.link)) == 1
        receive(quiet, again, PubRel(packet_id=9))
        assert sent(again.link) == [PubComp(packet_id=9)]

    @both_versions
    def test_pubrel_for_an_unknown_id(self, quiet: Core, version: ProtocolVersion) -> None:
        """A PUBREL for no id held: PUBCOMP 0x92 Packet Identifier not found (3.1.1: plain PUBCOMP)."""
        pub = connect(quiet, "p", version=version)
        receive(quiet, pub, PubRel(packet_id=5))
        assert sent(pub.link) == [PubComp(packet_id=5, reason_code=not_found(version))]

    def test_refused_publish_ends_the_flow_v5(self, quiet: Core) -> None:
        """Section 4.3.3: PUBREC 0x87 (0x80 or more) ends the exchange; the id is free at once."""

        class Refuses:
            async def authorize_publish(
                self, client: ClientInfo, topic: str, qos: int, retain: bool
            ) -> ReasonCode | None:
                return RC.NOT_AUTHORIZED

        quiet.add_publish_authorizer(Refuses())
        pub = connect(quiet, "p")
        publish(quiet, pub, "t", qos=2, packet_id=9)
        assert sent(pub.link) == [PubRec(packet_id=9, reason_code=RC.NOT_AUTHORIZED)]
        assert pub.session.incoming_qos2 == set()


class TestToTheClient_4_3_3:
    @both_versions
    def test_the_whole_flow(self, core: Core, version: ProtocolVersion) -> None:
        """[MQTT-4.3.3-2] PUBLISH QoS 2, DUP 0; [MQTT-4.3.3-4] PUBREL after PUBREC; done at PUBCOMP."""
        sub = connect(core, "s", version=version)
        subscribe(core, sub, "t", qos=2)
        core.publish("t", b"x", qos=2)
        assert sent(sub.link) == [message("t", b"x", qos=2, packet_id=1)]
        assert sub.session.inflight[1].status is DeliveryStatus.SENT
        receive(core, sub, PubRec(packet_id=1))
        assert sent(sub.link) == [PubRel(packet_id=1)]
        assert sub.session.inflight[1].status is DeliveryStatus.RELEASED
        receive(core, sub, PubComp(packet_id=1))
        assert sub.session.inflight == {}
        assert sent(sub.link) == []

    def test_pubrec_with_an_error_ends_the_flow(self, core: Core) -> None:
        """[MQTT-4.3.3-4] PUBREL only for a PUBREC below 0x80; 0x80 or more completes the delivery."""
        sub = connect(core, "s", receive_maximum=1)
        subscribe(core, sub, "t", qos=2)
        core.publish("t", b"1", qos=2)
        core.publish("t", b"2", qos=2)
        sent(sub.link)
        receive(core, sub, PubRec(packet_id=1, reason_code=RC.UNSPECIFIED_ERROR))
        # No PUBREL, and the window is free for the next message [MQTT-3.3.4-9].
        assert sent(sub.link) == [message("t", b"2", qos=2, packet_id=2)]

    def test_pubrec_repeated_gets_pubrel_again(self, core: Core) -> None:
        """A PUBREC repeated after our PUBREL is answered with the PUBREL again (as Mosquitto)."""
        sub = connect(core, "s")
        subscribe(core, sub, "t", qos=2)
        core.publish("t", b"x", qos=2)
        sent(sub.link)
        receive(core, sub, PubRec(packet_id=1), PubRec(packet_id=1))
        assert sent(sub.link) == [PubRel(packet_id=1), PubRel(packet_id=1)]

    @both_versions
    def test_pubrec_for_an_id_not_in_flight(self, core: Core, version: ProtocolVersion) -> None:
        """A PUBREC for nothing in flight: PUBREL 0x92 Packet Identifier not found (3.1.1: plain)."""
        sub = connect(core, "s", version=version)
        receive(core, sub, PubRec(packet_id=4))
        assert sent(sub.link) == [PubRel(packet_id=4, reason_code=not_found(version))]

    @pytest.mark.parametrize(
        ("wrong", "after_pubrec"),
        [(PubAck(packet_id=1), False), (PubComp(packet_id=1), False), (PubAck(packet_id=1), True)],
        ids=["PUBACK for PUBLISH", "PUBCOMP before PUBREC", "PUBACK for PUBREL"],
    )
    def test_wrong_ack_is_a_protocol_error(
        self, core: Core, wrong: PubAck | PubComp, after_pubrec: bool
    ) -> None:
        """[MQTT-4.3.3-8] PUBREC answers a QoS 2 PUBLISH, [MQTT-4.3.3-11] PUBCOMP a PUBREL: else 0x82."""
        sub = connect(core, "s")
        subscribe(core, sub, "t", qos=2)
        core.publish("t", b"x", qos=2)
        if after_pubrec:
            receive(core, sub, PubRec(packet_id=1))
        sent(sub.link)
        receive(core, sub, wrong)
        assert disconnect_code(sent(sub.link)) == RC.PROTOCOL_ERROR
        assert sub.link.closed  # type: ignore[attr-defined]

    def test_the_window_counts_until_pubcomp(self, core: Core) -> None:
        """[MQTT-3.3.4-9] a QoS 2 message holds its place until PUBCOMP, not PUBREC."""
        sub = connect(core, "s", receive_maximum=1)
        subscribe(core, sub, "t", qos=2)
        core.publish("t", b"1", qos=2)
        core.publish("t", b"2", qos=2)
        assert len(sent(sub.link)) == 1
        receive(core, sub, PubRec(packet_id=1))
        assert sent(sub.link) == [PubRel(packet_id=1)]
        receive(core, sub, PubComp(packet_id=1))
        assert sent(sub.link) == [message("t", b"2", qos=2, packet_id=2)]


class TestResend_4_4:
    @both_versions
    def test_publish_resent_before_pubrec_pubrel_after(self, core: Core, version: ProtocolVersion) -> None:
        """[MQTT-4.4.0-1] unacknowledged PUBLISH (DUP 1) and PUBREL are resent with their ids.

        [MQTT-4.3.3-6] once PUBREL is sent, the PUBLISH is never sent again.
        """
        sub = connect(core, "s", **persistent(version))  # type: ignore[arg-type]
        subscribe(core, sub, "t", qos=2)
        core.publish("t", b"1", qos=2)
        core.publish("t", b"2", qos=2)
        receive(core, sub, PubRec(packet_id=1))
        sent(sub.link)
        drop(core, sub)
        again = connect(core, "s", **persistent(version))  # type: ignore[arg-type]
        assert sent(again.link) == [PubRel(packet_id=1), message("t", b"2", qos=2, packet_id=2, dup=True)]
        receive(core, again, PubComp(packet_id=1), PubRec(packet_id=2))
        assert sent(again.link) == [PubRel(packet_id=2)]
