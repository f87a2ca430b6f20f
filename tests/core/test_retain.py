"""Retained messages (MQTT 5.0 section 3.3.1.3 and Retain Handling, 3.8.3.1; 3.1.1 section 3.3.1.3).

One retained message per topic, replaced by the next, cleared by an empty
payload; sent with RETAIN 1 to a new subscription as its Retain Handling
says, at most at the granted QoS, and not once its Message Expiry passed.
"""

from __future__ import annotations

from zanzara.core import Core
from zanzara.mqtt.enums import ProtocolVersion, RetainHandling
from zanzara.mqtt.properties import Properties

from .conftest import (
    RC,
    CoreFactory,
    FakeScheduler,
    both_versions,
    connect,
    disconnect_code,
    message,
    option,
    publish,
    sent,
    subscribe,
)


class TestRetained_3_3_1_3:
    @both_versions
    def test_sent_to_a_new_subscription_with_retain_set(self, core: Core, version: ProtocolVersion) -> None:
        """[MQTT-3.3.1-5] the server keeps the retained message; [MQTT-3.3.1-9] RH 0 sends it.

        3.1.1 [MQTT-3.3.1-6] sent to a new subscription, [MQTT-3.3.1-8] with RETAIN 1.
        """
        pub = connect(core, "p", version=version)
        publish(core, pub, "a/1", b"one", retain=True)
        publish(core, pub, "a/2", b"two", qos=1, retain=True)
        sub = connect(core, "s", version=version)
        subscribe(core, sub, "a/+", qos=1)
        assert sorted(sent(sub.link), key=lambda p: p.topic) == [  # type: ignore[union-attr]
            message("a/1", b"one", retain=True),
            message("a/2", b"two", qos=1, packet_id=1, retain=True),
        ]

    @both_versions
    def test_at_most_the_granted_qos(self, core: Core, version: ProtocolVersion) -> None:
        """[MQTT-3.8.4-8] a retained message too goes at the lower of its QoS and the granted one."""
        core.publish("t", b"x", qos=2, retain=True)
        sub = connect(core, "s", version=version)
        subscribe(core, sub, "t", qos=1)
        assert sent(sub.link) == [message("t", b"x", qos=1, packet_id=1, retain=True)]

    @both_versions
    def test_a_new_one_replaces_the_old(self, core: Core, version: ProtocolVersion) -> None:
        """[MQTT-3.3.1-5] a retained PUBLISH replaces the topic's retained message."""
        pub = connect(core, "p", version=version)
        publish(core, pub, "t", b"old", retain=True)
        publish(core, pub, "t", b"new", retain=True)
        sub = connect(core, "s", version=version)
        subscribe(core, sub, "t")
        assert sent(sub.link) == [message("t", b"new", retain=True)]

    def test_a_plain_publish_leaves_it(self, core: Core) -> None:
        """[MQTT-3.3.1-8] RETAIN 0: not stored, does not remove or replace the retained message."""
        pub = connect(core, "p")
        publish(core, pub, "t", b"kept", retain=True)
        publish(core, pub, "t", b"live")
        sub = connect(core, "s")
        subscribe(core, sub, "t")
        assert sent(sub.link) == [message("t", b"kept", retain=True)]

    @both_versions
    def test_empty_payload_clears_it(self, core: Core, version: ProtocolVersion) -> None:
        """[MQTT-3.3.1-6] an empty retained PUBLISH removes the retained message and is delivered as usual.

        [MQTT-3.3.1-7] it is not stored itself.  3.1.1 [MQTT-3.3.1-10], [MQTT-3.3.1-11].
        """
        watcher = connect(core, "w", version=version)
        subscribe(core, watcher, "t")
        pub = connect(core, "p", version=version)
        publish(core, pub, "t", b"x", retain=True)
        publish(core, pub, "t", b"", retain=True)
        assert sent(watcher.link) == [message("t", b"x"), message("t", b"")]
        late = connect(core, "late", version=version)
        subscribe(core, late, "t")
        assert sent(late.link) == []
        assert list(core.state.retained.match("#")) == []

    def test_retain_not_available(self, make_core: CoreFactory) -> None:
        """3.3.1.3 with [MQTT-3.2.2-14]: RETAIN 1 when Retain Available is 0: DISCONNECT 0x9A."""
        core = make_core(retain_available=False)
        pub = connect(core, "p")
        publish(core, pub, "t", b"x", retain=True)
        assert disconnect_code(sent(pub.link)) == RC.RETAIN_NOT_SUPPORTED


class TestRetainHandling_3_8_3_1:
    def test_0_sends_on_every_subscribe(self, core: Core) -> None:
        """[MQTT-3.3.1-9] Retain Handling 0: retained messages on every SUBSCRIBE, new or not."""
        core.publish("t", b"x", retain=True)
        sub = connect(core, "s")
        subscribe(core, sub, option("t"))
        subscribe(core, sub, option("t"), packet_id=2)
        assert sent(sub.link) == [message("t", b"x", retain=True)] * 2

    def test_1_sends_only_for_a_new_subscription(self, core: Core) -> None:
        """[MQTT-3.3.1-10] Retain Handling 1: sent if the subscription did not exist, else not."""
        core.publish("t", b"x", retain=True)
        sub = connect(core, "s")
        rh1 = option("t", retain_handling=RetainHandling.SEND_IF_NEW_SUBSCRIPTION)
        subscribe(core, sub, rh1)
        assert sent(sub.link) == [message("t", b"x", retain=True)]
        subscribe(core, sub, rh1, packet_id=2)
        assert sent(sub.link) == []

    def test_2_never_sends(self, core: Core) -> None:
        """[MQTT-3.3.1-11] Retain Handling 2: retained messages are not sent on SUBSCRIBE."""
        core.publish("t", b"x", retain=True)
        sub = connect(core, "s")
        subscribe(core, sub, option("t", retain_handling=RetainHandling.DO_NOT_SEND))
        assert sent(sub.link) == []
        core.publish("t", b"live")
        assert sent(sub.link) == [message("t", b"live")]


class TestRetainedExpiry_3_3_2_3_3:
    def test_sent_with_what_is_left_of_its_expiry(self, core: Core, scheduler: FakeScheduler) -> None:
        """[MQTT-3.3.2-6] the Message Expiry Interval sent is the received one less the time it waited."""
        pub = connect(core, "p")
        publish(core, pub, "t", b"x", retain=True, message_expiry_interval=60)
        scheduler.advance(20)
        sub = connect(core, "s")
        subscribe(core, sub, "t")
        assert sent(sub.link) == [
            message("t", b"x", retain=True, properties=Properties(message_expiry_interval=40))
        ]

    def test_expired_is_not_sent_and_forgotten(self, core: Core, scheduler: FakeScheduler) -> None:
        """3.3.2.3.3: once its expiry passed the retained message is not sent; the topic has none."""
        pub = connect(core, "p")
        publish(core, pub, "t", b"x", retain=True, message_expiry_interval=60)
        scheduler.advance(60)
        sub = connect(core, "s")
        subscribe(core, sub, "t")
        assert sent(sub.link) == []
        assert list(core.state.retained.match("t")) == []

    def test_server_side_ttl_rule_expires_it_too(
        self, make_core: CoreFactory, scheduler: FakeScheduler
    ) -> None:
        """[push] default_ttl gives a message published without an expiry one, retained ones too."""
        from zanzara.config import PushConfig

        core = make_core(push=PushConfig(default_ttl=30))
        core.publish("t", b"x", retain=True)
        scheduler.advance(29)
        early = connect(core, "early")
        subscribe(core, early, "t")
        assert sent(early.link) == [
            message("t", b"x", retain=True, properties=Properties(message_expiry_interval=1))
        ]
        scheduler.advance(1)
        late = connect(core, "late")
        subscribe(core, late, "t")
        assert sent(late.link) == []
