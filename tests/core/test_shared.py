"""Shared subscriptions (MQTT 5.0 section 4.8.2).

Each message matching ``$share/{ShareName}/{filter}`` goes to one member of
the group: round robin, connected members first; a group and an ordinary
subscription each get their copy; no retained messages on subscribing.
"""

from __future__ import annotations

from zanzara.core import Core
from zanzara.mqtt.packets import Publish, Unsubscribe

from .conftest import (
    connect,
    drop,
    message,
    publish,
    publishes,
    receive,
    sent,
    subscribe,
)


def payloads(packets: list[Publish]) -> list[bytes]:
    return [p.payload for p in packets]


def persistent() -> dict[str, object]:
    return {"clean_start": False, "session_expiry_interval": 3600}


class TestSharedSubscriptions_4_8_2:
    def test_each_message_to_one_member_in_turn(self, core: Core) -> None:
        """4.8.2: a message of a shared subscription goes to one session of the group (here, in turn)."""
        a = connect(core, "a")
        b = connect(core, "b")
        subscribe(core, a, "$share/g/t/#")
        subscribe(core, b, "$share/g/t/#")
        for n in range(4):
            core.publish("t/x", bytes([48 + n]))
        assert payloads(publishes(a.link)) == [b"0", b"2"]
        assert payloads(publishes(b.link)) == [b"1", b"3"]

    def test_groups_and_plain_subscriptions_each_get_a_copy(self, core: Core) -> None:
        """4.8.2: each Shared Subscription is separate, and apart from Non-shared Subscriptions."""
        a = connect(core, "a")
        b = connect(core, "b")
        subscribe(core, a, "$share/one/t", "t")
        subscribe(core, b, "$share/two/t")
        core.publish("t", b"x")
        assert payloads(publishes(a.link)) == [b"x", b"x"]
        assert payloads(publishes(b.link)) == [b"x"]

    def test_connected_members_are_preferred(self, core: Core) -> None:
        """A member whose client is away is skipped while another is connected (nothing queued for it)."""
        a = connect(core, "a", **persistent())  # type: ignore[arg-type]
        b = connect(core, "b")
        subscribe(core, a, "$share/g/t", qos=1)
        subscribe(core, b, "$share/g/t", qos=1)
        drop(core, a)
        for n in range(3):
            core.publish("t", bytes([48 + n]), qos=1)
        assert payloads(publishes(b.link)) == [b"0", b"1", b"2"]
        assert core.sessions["a"].queued == 0

    def test_with_no_member_connected_one_session_keeps_it(self, core: Core) -> None:
        """[MQTT-4.8.2-4] the message waits in one member's session, delivered when it reconnects."""
        a = connect(core, "a", **persistent())  # type: ignore[arg-type]
        subscribe(core, a, "$share/g/t", qos=1)
        drop(core, a)
        core.publish("t", b"x", qos=1)
        again = connect(core, "a", **persistent())  # type: ignore[arg-type]
        assert sent(again.link) == [message("t", b"x", qos=1, packet_id=1)]

    def test_granted_qos_of_the_member(self, core: Core) -> None:
        """[MQTT-4.8.2-3] the server respects the granted QoS of the member's subscription."""
        a = connect(core, "a")
        subscribe(core, a, "$share/g/t", qos=0)
        pub = connect(core, "p")
        publish(core, pub, "t", b"x", qos=2)
        assert publishes(a.link) == [message("t", b"x")]

    def test_no_retained_messages_on_subscribe(self, core: Core) -> None:
        """4.8.2 / 3.3.1.3: retained messages are not sent when a shared subscription is made."""
        core.publish("t", b"kept", retain=True)
        a = connect(core, "a")
        subscribe(core, a, "$share/g/t")
        assert sent(a.link) == []
        core.publish("t", b"live", retain=True)
        assert sent(a.link) == [message("t", b"live")]

    def test_a_member_that_leaves_gets_nothing_more(self, core: Core) -> None:
        """UNSUBSCRIBE, or the end of its session, takes a member out of the group."""
        a = connect(core, "a")
        b = connect(core, "b")
        c = connect(core, "c")
        for client in (a, b, c):
            subscribe(core, client, "$share/g/t")
        receive(core, a, Unsubscribe(packet_id=2, topic_filters=("$share/g/t",)))
        drop(core, c)
        sent(a.link)
        for _ in range(3):
            core.publish("t", b"x")
        assert publishes(a.link) == []
        assert len(publishes(b.link)) == 3
