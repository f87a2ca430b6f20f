"""SUBSCRIBE, UNSUBSCRIBE and what subscriptions make of a PUBLISH (MQTT 5.0 3.8-3.11, 3.3.4).

Granted QoS and failure codes in SUBACK (3.8.4, 3.9.3), malformed filters
(4.7, a Protocol Error), our limits, subscription options (No Local, Retain
As Published, 3.8.3.1), Subscription Identifiers (3.8.2.1.2, 3.3.4) and
overlapping subscriptions (3.3.4), for 3.1.1 too where it differs.
"""

from __future__ import annotations

import pytest

from zanzara.core import Core
from zanzara.hooks import ClientInfo
from zanzara.mqtt.enums import ProtocolVersion, ReasonCode
from zanzara.mqtt.packets import Subscribe, Subscription, UnsubAck, Unsubscribe
from zanzara.mqtt.properties import Properties

from .conftest import (
    RC,
    V5,
    V311,
    CoreFactory,
    both_versions,
    connect,
    disconnect_code,
    message,
    option,
    publish,
    publishes,
    receive,
    sent,
    subscribe,
)


def failure(code: int, version: ProtocolVersion) -> int:
    """A SUBACK failure as ``version`` says it: 5.0 the reason code, 3.1.1 0x80."""
    return code if version is V5 else 0x80


class TestSubAck_3_9:
    @both_versions
    def test_one_code_per_filter_in_order(self, make_core: CoreFactory, version: ProtocolVersion) -> None:
        """[MQTT-3.8.4-6] a code for each filter, in order; [MQTT-3.8.4-7] the QoS granted, at most ours.

        [MQTT-3.8.4-2] the SUBACK has the SUBSCRIBE's packet id.
        """
        core = make_core(max_qos=1)
        client = connect(core, "c", version=version)
        suback = subscribe(core, client, option("a", 0), option("b", 1), option("c", 2), packet_id=77)
        assert suback.packet_id == 77
        assert suback.reason_codes == (0, 1, 1)

    @both_versions
    @pytest.mark.parametrize(
        "bad",
        ["a/#/b", "a+", "", "$share/g"],
        ids=["# not last", "+ in a level", "empty", "share, no filter"],
    )
    def test_malformed_filter_is_a_protocol_error(
        self, core: Core, version: ProtocolVersion, bad: str
    ) -> None:
        """4.7.1, [MQTT-4.7.3-1], 4.8.2: a malformed filter is a Protocol Error (5.0 DISCONNECT 0x82).

        3.1.1 [MQTT-4.8.0-1] closes the connection.  Nothing of the packet is subscribed.
        """
        client = connect(core, "c", version=version)
        receive(core, client, Subscribe(packet_id=1, subscriptions=(option("ok"), option(bad))))
        packets = sent(client.link)
        if version is V5:
            assert disconnect_code(packets) == RC.PROTOCOL_ERROR
        else:
            assert packets == []
        assert client.link.closed  # type: ignore[attr-defined]
        assert client.session.subscriptions == {}

    @both_versions
    def test_beyond_our_limits_is_refused(self, make_core: CoreFactory, version: ProtocolVersion) -> None:
        """3.9.3 Table 3-8: 0x8F Topic Filter invalid, "correctly formed but not allowed" (3.1.1 0x80)."""
        core = make_core(max_topic_levels=3, max_topic_length=20)
        client = connect(core, "c", version=version)
        suback = subscribe(core, client, "a/b/c/d", "x" * 21, "a/b/c", qos=1)
        invalid = failure(RC.TOPIC_FILTER_INVALID, version)
        assert suback.reason_codes == (invalid, invalid, 1)
        assert set(client.session.subscriptions) == {"a/b/c"}

    @both_versions
    def test_max_subscriptions(self, make_core: CoreFactory, version: ProtocolVersion) -> None:
        """max_subscriptions: 0x97 Quota exceeded beyond it (3.1.1 0x80); a held filter costs nothing."""
        core = make_core(max_subscriptions=2)
        client = connect(core, "c", version=version)
        assert subscribe(core, client, "a", "b").reason_codes == (0, 0)
        suback = subscribe(core, client, "a", "c", qos=1)
        assert suback.reason_codes == (1, failure(RC.QUOTA_EXCEEDED, version))
        assert set(client.session.subscriptions) == {"a", "b"}

    def test_features_switched_off(self, make_core: CoreFactory) -> None:
        """3.9.3: 0x9E Shared Subscriptions not supported, 0xA2 Wildcard Subscriptions not supported."""
        core = make_core(shared_subscriptions=False, wildcard_subscriptions=False)
        client = connect(core, "c")
        suback = subscribe(core, client, "$share/g/t", "a/+", "a/#", "a/b")
        assert suback.reason_codes == (0x9E, 0xA2, 0xA2, 0)

    @both_versions
    def test_authorizer_refuses_or_downgrades(self, core: Core, version: ProtocolVersion) -> None:
        """A subscribe authorizer refuses (5.0 0x87, 3.1.1 0x80) or grants a lower QoS."""

        class Policy:
            async def authorize_subscribe(
                self, client: ClientInfo, subscription: Subscription
            ) -> ReasonCode | None:
                if subscription.topic_filter == "secret":
                    return RC.NOT_AUTHORIZED
                if subscription.topic_filter == "slow":
                    return RC.GRANTED_QOS_0
                return None

        core.add_subscribe_authorizer(Policy())
        client = connect(core, "c", version=version)
        suback = subscribe(core, client, "secret", "slow", "open", qos=2)
        assert suback.reason_codes == (failure(RC.NOT_AUTHORIZED, version), 0, 2)
        assert set(client.session.subscriptions) == {"slow", "open"}


class TestSubscriptions_3_8_4:
    @both_versions
    def test_same_filter_replaces_the_subscription(self, core: Core, version: ProtocolVersion) -> None:
        """[MQTT-3.8.4-3] a SUBSCRIBE with a filter held replaces the subscription (its QoS here)."""
        client = connect(core, "c", version=version)
        subscribe(core, client, "t", qos=0)
        subscribe(core, client, "t", qos=1)
        core.publish("t", b"x", qos=1)
        assert sent(client.link) == [message("t", b"x", qos=1, packet_id=1)]
        assert len(client.session.subscriptions) == 1

    @both_versions
    def test_overlapping_subscriptions_one_copy_at_the_highest_qos(
        self, core: Core, version: ProtocolVersion
    ) -> None:
        """[MQTT-3.3.4-2] overlapping subscriptions: the message at the highest QoS of those matching.

        The server sends one copy (3.1.1 section 3.3.5 allows either, this server sends one).
        """
        client = connect(core, "c", version=version)
        subscribe(core, client, "a/+", qos=0)
        subscribe(core, client, "a/#", qos=2)
        subscribe(core, client, "#", qos=1)
        core.publish("a/b", b"x", qos=2)
        assert sent(client.link) == [message("a/b", b"x", qos=2, packet_id=1)]

    def test_one_copy_carries_every_subscription_identifier(self, core: Core) -> None:
        """[MQTT-3.3.4-3] one copy for overlapping subscriptions has all their Subscription Identifiers."""
        client = connect(core, "c")
        subscribe(core, client, "a/+", qos=1, subscription_id=7)
        subscribe(core, client, "a/#", qos=0, subscription_id=3)
        subscribe(core, client, "#", qos=0)
        core.publish("a/b", b"x", qos=1)
        assert sent(client.link) == [
            message("a/b", b"x", qos=1, packet_id=1, properties=Properties(subscription_identifiers=(3, 7)))
        ]

    def test_subscription_identifier_comes_with_the_message(self, core: Core) -> None:
        """3.8.2.1.2: the Subscription Identifier goes with every message the subscription matches."""
        client = connect(core, "c")
        subscribe(core, client, "a/#", subscription_id=42)
        subscribe(core, client, "b", packet_id=2)
        core.publish("a/x", b"1")
        core.publish("b", b"2")
        assert sent(client.link) == [
            message("a/x", b"1", properties=Properties(subscription_identifiers=(42,))),
            message("b", b"2"),
        ]

    def test_no_local(self, core: Core) -> None:
        """[MQTT-3.8.3-3] No Local: nothing the client published itself comes back to it."""
        client = connect(core, "c")
        other = connect(core, "o")
        subscribe(core, client, option("t", no_local=True))
        subscribe(core, other, option("t", no_local=True))
        publish(core, client, "t", b"mine")
        assert sent(client.link) == []
        assert sent(other.link) == [message("t", b"mine")]

    def test_no_local_with_overlapping_subscriptions(self, core: Core) -> None:
        """[MQTT-3.8.3-3] per subscription: only those without No Local count for the client's own message."""
        client = connect(core, "c")
        subscribe(core, client, option("t/#", qos=1, no_local=True), option("x/#", no_local=True))
        subscribe(core, client, option("t/+", qos=0), option("x/+", no_local=True), packet_id=2)
        publish(core, client, "t/x", b"1", qos=1)
        publish(core, client, "x/x", b"2", qos=1)
        # One copy, at the QoS of the one subscription that counts; none on x/x.
        assert publishes(client.link) == [message("t/x", b"1")]

    def test_no_local_on_a_shared_subscription_is_a_protocol_error(self, core: Core) -> None:
        """[MQTT-3.8.3-4] No Local set on a Shared Subscription is a Protocol Error: DISCONNECT 0x82."""
        client = connect(core, "c")
        receive(core, client, Subscribe(packet_id=1, subscriptions=(option("$share/g/t", no_local=True),)))
        assert disconnect_code(sent(client.link)) == RC.PROTOCOL_ERROR

    def test_retain_as_published(self, core: Core) -> None:
        """[MQTT-3.3.1-12] RAP 0: RETAIN 0 on forwarded messages; [MQTT-3.3.1-13] RAP 1: as published."""
        plain = connect(core, "plain")
        rap = connect(core, "rap")
        subscribe(core, plain, "t")
        subscribe(core, rap, option("t", retain_as_published=True))
        pub = connect(core, "p")
        publish(core, pub, "t", b"x", retain=True)
        assert sent(plain.link) == [message("t", b"x")]
        assert sent(rap.link) == [message("t", b"x", retain=True)]

    def test_retain_flag_cleared_on_live_messages_v311(self, core: Core) -> None:
        """3.1.1 [MQTT-3.3.1-9] RETAIN 0 on a message sent because it matches an established subscription."""
        sub = connect(core, "s", version=V311)
        subscribe(core, sub, "t")
        pub = connect(core, "p", version=V311)
        publish(core, pub, "t", b"x", retain=True)
        assert sent(sub.link) == [message("t", b"x")]

    def test_acl_decides_who_receives(self, core: Core) -> None:
        """An ACL's may_receive is asked per client and topic; its answers are cached until invalidated."""
        allowed = {("a", "t")}
        core.set_acl(lambda cid, topic: (cid, topic) in allowed, lambda info: None)
        a = connect(core, "a")
        b = connect(core, "b")
        subscribe(core, a, "t")
        subscribe(core, b, "t")
        core.publish("t", b"1")
        assert sent(a.link) == [message("t", b"1")]
        assert sent(b.link) == []
        allowed.add(("b", "t"))
        core.invalidate()
        core.publish("t", b"2")
        assert sent(b.link) == [message("t", b"2")]


class TestUnsubscribe_3_10:
    def test_unsuback_per_filter_v5(self, core: Core) -> None:
        """[MQTT-3.10.4-4], [MQTT-3.10.4-5] UNSUBACK with the packet id, 0x11 for a filter not held."""
        client = connect(core, "c")
        subscribe(core, client, "a")
        receive(core, client, Unsubscribe(packet_id=5, topic_filters=("a", "b")))
        assert sent(client.link) == [UnsubAck(packet_id=5, reason_codes=(0, RC.NO_SUBSCRIPTION_EXISTED))]

    def test_unsuback_v311(self, core: Core) -> None:
        """3.1.1 [MQTT-3.10.4-4] UNSUBACK even if nothing was removed; 3.1.1 has no reason codes."""
        client = connect(core, "c", version=V311)
        receive(core, client, Unsubscribe(packet_id=5, topic_filters=("b",)))
        assert sent(client.link) == [UnsubAck(packet_id=5)]

    @both_versions
    def test_no_more_messages_after_unsubscribe(self, core: Core, version: ProtocolVersion) -> None:
        """[MQTT-3.10.4-1], [MQTT-3.10.4-2] the subscription is deleted, no new messages are added."""
        client = connect(core, "c", version=version)
        subscribe(core, client, "a", "b")
        receive(core, client, Unsubscribe(packet_id=2, topic_filters=("a",)))
        sent(client.link)
        core.publish("a", b"1")
        core.publish("b", b"2")
        assert sent(client.link) == [message("b", b"2")]

    def test_malformed_filter_is_a_protocol_error(self, core: Core) -> None:
        """A malformed filter in UNSUBSCRIBE is a Protocol Error as in SUBSCRIBE: nothing removed."""
        client = connect(core, "c")
        subscribe(core, client, "a")
        receive(core, client, Unsubscribe(packet_id=2, topic_filters=("a", "b/#/c")))
        assert disconnect_code(sent(client.link)) == RC.PROTOCOL_ERROR
        assert set(client.session.subscriptions) == {"a"}
