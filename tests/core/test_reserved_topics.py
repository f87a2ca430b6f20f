"""Clients do not write the broker's tree: ``$SYS`` and ``$share/`` topic names (MQTT 5.0 section 4.7.2).

"The Server SHOULD prevent Clients from using such Topic Names [beginning with
$] to exchange messages with other Clients" (4.7.2); ``$SYS/`` is where servers
publish about themselves, and ``$share/`` names shared subscriptions (4.8.2).
A client PUBLISH there is refused as an authorizer's refusal is: v5 PUBACK or
PUBREC 0x87, 3.1.1 acknowledged and dropped, QoS 0 dropped; nothing is
retained, routed or stored.  The broker's own publications are unaffected.
"""

from __future__ import annotations

from unittest.mock import MagicMock

import pytest

from zanzara.core import Core
from zanzara.core.publish import is_reserved
from zanzara.mqtt.enums import ProtocolVersion
from zanzara.mqtt.packets import PubAck, PubComp, PubRec, PubRel

from .conftest import V5, V311, both_versions, connect, message, publish, receive, sent, subscribe

RESERVED = ["$SYS/broker/uptime", "$SYS", "$SYS/", "$share/g/t", "$share/g"]


@pytest.mark.parametrize(
    ("topic", "reserved"),
    [
        ("$SYS", True),
        ("$SYS/broker/uptime", True),
        ("$share/group/t", True),
        ("$SYSTEM/x", False),  # only the $SYS level itself
        ("$share", False),  # a plain topic: no shared subscription can be named so
        ("$other/t", False),
        ("sys/$SYS", False),
        ("t", False),
    ],
)
def test_which_topics_are_reserved(topic: str, reserved: bool) -> None:
    assert is_reserved(topic) is reserved


class TestRefused_4_7_2:
    @pytest.mark.parametrize("topic", RESERVED)
    def test_v5_qos1_puback_not_authorized(self, core: Core, topic: str) -> None:
        """Section 4.7.2 the server SHOULD prevent it; 3.4.2.1 PUBACK 0x87 Not authorized."""
        pub = connect(core, "p", version=V5)
        publish(core, pub, topic, b"forged", qos=1, packet_id=7)
        assert sent(pub.link) == [PubAck(packet_id=7, reason_code=0x87)]
        assert core.stats.publishes_refused == 1

    def test_v5_qos2_pubrec_not_authorized_ends_the_flow(self, core: Core) -> None:
        """Section 3.5.2.1 PUBREC 0x87; [MQTT-4.3.3-4] a PUBREC of 0x80 or more ends the flow."""
        pub = connect(core, "p", version=V5)
        publish(core, pub, "$SYS/broker/uptime", b"forged", qos=2, packet_id=8)
        assert sent(pub.link) == [PubRec(packet_id=8, reason_code=0x87)]
        assert 8 not in pub.session.incoming_qos2

    def test_v311_acknowledged_and_dropped(self, core: Core) -> None:
        """3.1.1 has no refusal for a PUBLISH: acknowledged (section 3.4, 3.5) and dropped."""
        pub = connect(core, "p", version=V311)
        publish(core, pub, "$SYS/x", b"forged", qos=1, packet_id=3)
        publish(core, pub, "$SYS/x", b"forged", qos=2, packet_id=4)
        assert sent(pub.link) == [PubAck(packet_id=3), PubRec(packet_id=4)]
        receive(core, pub, PubRel(packet_id=4))
        assert sent(pub.link) == [PubComp(packet_id=4)]

    @both_versions
    @pytest.mark.parametrize("qos", [0, 1, 2])
    def test_not_retained_nor_routed(self, core: Core, version: ProtocolVersion, qos: int) -> None:
        """A forged retained ``$SYS/broker/uptime`` is neither delivered nor kept for later readers."""
        sub = connect(core, "s", version=version)
        subscribe(core, sub, "$SYS/#", "$share/g/#", "#", qos=2)
        pub = connect(core, "p", version=version)
        publish(core, pub, "$SYS/broker/uptime", b"forged", qos=qos, retain=True)
        publish(core, pub, "$share/g/t", b"forged", qos=qos, retain=True)
        assert sent(sub.link) == []
        assert list(core.state.retained.match("#")) == []
        assert list(core.state.retained.match("$SYS/#")) == []
        late = connect(core, "late", version=version)
        subscribe(core, late, "$SYS/#")
        assert sent(late.link) == []

    def test_nothing_stored(self, core: Core) -> None:
        """No store write at all; a plain retained PUBLISH, for contrast, is stored."""
        sub = connect(core, "s", version=V5)
        subscribe(core, sub, "#")
        pub = connect(core, "p", version=V5)
        core.state.store = store = MagicMock()
        publish(core, pub, "$SYS/broker/uptime", b"forged", qos=1, retain=True)
        assert store.method_calls == []
        publish(core, pub, "t", b"fine", retain=True)
        assert [call[0] for call in store.method_calls] == ["retained_put"]

    def test_other_dollar_topics_are_not_refused(self, core: Core) -> None:
        """Only the broker's tree is reserved; other ``$`` topics work, unmatched by ``#`` [MQTT-4.7.2-1]."""
        sub = connect(core, "s", version=V5)
        subscribe(core, sub, "$app/#")
        pub = connect(core, "p", version=V5)
        publish(core, pub, "$app/t", b"ok", qos=1, packet_id=5)
        [ack] = sent(pub.link)
        assert isinstance(ack, PubAck) and ack.reason_code == 0
        assert sent(sub.link) == [message("$app/t", b"ok")]


def test_the_broker_still_publishes_there(core: Core) -> None:
    """The broker's own publications are not client publications: they go through."""
    sub = connect(core, "s", version=V5)
    subscribe(core, sub, "$SYS/#")
    core.publish("$SYS/broker/version", b"zanzara", retain=True)
    assert sent(sub.link) == [message("$SYS/broker/version", b"zanzara")]
    assert [t for t, _ in core.state.retained.match("$SYS/#")] == ["$SYS/broker/version"]
