"""Push rules: priority, collapse key and time to live of a message (``[push]``, not in the spec).

What a publisher says comes first: an MQTT 5 Message Expiry Interval, and
``priority`` / ``collapse-key`` user properties; the ``[push]`` topic rules
fill what it did not say (first matching rule wins), ``default_ttl`` what no
rule says.  A session queue delivers the highest priority first, oldest first
within one, and keeps only the newest message of a collapse key.  The
forwarded PUBLISH keeps the publisher's user properties unchanged.
"""

from __future__ import annotations

from zanzara.config import PushConfig, TopicPriority, TopicTtl
from zanzara.core import Client, Core
from zanzara.mqtt.packets import Publish
from zanzara.mqtt.properties import Properties

from .conftest import (
    V311,
    CoreFactory,
    FakeScheduler,
    connect,
    drop,
    publish,
    publishes,
    subscribe,
)

RULES = PushConfig(
    priority=(TopicPriority(topic="alerts/#", priority=9), TopicPriority(topic="#", priority=1)),
    ttl=(TopicTtl(topic="news/#", ttl=60),),
)


def offline_subscriber(core: Core, topic_filter: str = "#") -> None:
    """Client "s" subscribes at QoS 1 with a session that outlives it, then goes away."""
    client = connect(core, "s", clean_start=False, session_expiry_interval=3600)
    subscribe(core, client, topic_filter, qos=1)
    drop(core, client)


def come_back(core: Core) -> list[Publish]:
    """Client "s" reconnects: what its queue delivers."""
    client = connect(core, "s", clean_start=False, session_expiry_interval=3600)
    return publishes(client.link)


def publisher(core: Core, version: object = None) -> Client:
    return connect(core, "p", **({"version": version} if version else {}))  # type: ignore[arg-type]


def payloads(packets: list[Publish]) -> list[bytes]:
    return [p.payload for p in packets]


class TestPriority:
    def test_queue_delivers_the_highest_priority_first(self, make_core: CoreFactory) -> None:
        """Topic rules give the priority; the queue sends by priority, then in publish order."""
        core = make_core(push=RULES)
        offline_subscriber(core)
        pub = publisher(core)
        for topic, payload in [
            ("a", b"low1"),
            ("alerts/x", b"high1"),
            ("a", b"low2"),
            ("alerts/y", b"high2"),
        ]:
            publish(core, pub, topic, payload, qos=1)
        assert payloads(come_back(core)) == [b"high1", b"high2", b"low1", b"low2"]

    def test_the_publishers_priority_property_comes_first(self, make_core: CoreFactory) -> None:
        """A ``priority`` user property overrides the rules; it is clamped to 0..255, junk is ignored."""
        core = make_core(push=RULES)
        offline_subscriber(core)
        pub = publisher(core)
        publish(core, pub, "alerts/x", b"rule 9", qos=1)
        publish(core, pub, "a", b"said 200", qos=1, user_properties=(("priority", "200"),))
        publish(core, pub, "a", b"said 255", qos=1, user_properties=(("priority", "255"),))
        publish(core, pub, "a", b"said 999", qos=1, user_properties=(("priority", "999"),))
        publish(core, pub, "alerts/y", b"junk", qos=1, user_properties=(("priority", "high"),))
        publish(core, pub, "alerts/z", b"said 0", qos=1, user_properties=(("priority", "0"),))
        delivered = come_back(core)
        # 999 is 255: after the 255 published before it.
        assert payloads(delivered) == [b"said 255", b"said 999", b"said 200", b"rule 9", b"junk", b"said 0"]
        # The user properties go on unchanged.
        assert delivered[1].properties == Properties(user_properties=(("priority", "999"),))

    def test_server_side_publish_priority(self, core: Core) -> None:
        """The embedded publish takes a priority argument (0..255)."""
        offline_subscriber(core)
        core.publish("t", b"normal", qos=1)
        core.publish("t", b"urgent", qos=1, priority=7)
        assert payloads(come_back(core)) == [b"urgent", b"normal"]

    def test_live_clients_get_publish_order(self, make_core: CoreFactory) -> None:
        """Priority orders the queue only: a connected client with room gets messages as they come."""
        core = make_core(push=RULES)
        sub = connect(core, "s")
        subscribe(core, sub, "#", qos=1)
        core.publish("a", b"low", qos=1)
        core.publish("alerts/x", b"high", qos=1)
        assert payloads(publishes(sub.link)) == [b"low", b"high"]


class TestCollapseKey:
    def test_only_the_newest_of_a_key_is_delivered(self, core: Core) -> None:
        """A ``collapse-key`` user property: a queued message is replaced by a newer one of its key."""
        offline_subscriber(core)
        pub = publisher(core)
        for n in range(3):
            publish(core, pub, "gps", b"pos%d" % n, qos=1, user_properties=(("collapse-key", "gps"),))
        publish(core, pub, "other", b"kept", qos=1)
        assert payloads(come_back(core)) == [b"pos2", b"kept"]
        assert core.stats.messages_dropped == 2

    def test_server_side_publish_collapse_key(self, core: Core) -> None:
        """The embedded publish takes a collapse_key argument."""
        offline_subscriber(core)
        core.publish("t", b"old", qos=1, collapse_key="k")
        core.publish("t", b"new", qos=1, collapse_key="k")
        assert payloads(come_back(core)) == [b"new"]


class TestTimeToLive:
    def test_topic_ttl_rule(self, make_core: CoreFactory, scheduler: FakeScheduler) -> None:
        """A ttl rule expires matching messages published without an expiry [MQTT-3.3.2-5]."""
        core = make_core(push=RULES)
        offline_subscriber(core)
        pub = publisher(core, V311)
        publish(core, pub, "news/1", b"stale", qos=1)
        publish(core, pub, "other", b"forever", qos=1)
        scheduler.advance(60)
        assert payloads(come_back(core)) == [b"forever"]
        assert core.stats.messages_expired == 1

    def test_the_publishers_expiry_comes_first(
        self, make_core: CoreFactory, scheduler: FakeScheduler
    ) -> None:
        """An MQTT 5 Message Expiry Interval overrides the ttl rules."""
        core = make_core(push=RULES)
        offline_subscriber(core)
        pub = publisher(core)
        publish(core, pub, "news/1", b"long", qos=1, message_expiry_interval=600)
        scheduler.advance(100)
        [delivered] = come_back(core)
        assert delivered.payload == b"long"
        assert delivered.properties.message_expiry_interval == 500

    def test_a_publisher_priority_keeps_the_ttl_rule(
        self, make_core: CoreFactory, scheduler: FakeScheduler
    ) -> None:
        """The rules fill what the publisher did not say: its priority does not cancel the ttl rule."""
        core = make_core(push=RULES)
        offline_subscriber(core)
        pub = publisher(core)
        publish(core, pub, "news/1", b"stale", qos=1, user_properties=(("priority", "5"),))
        scheduler.advance(60)
        assert come_back(core) == []

    def test_default_ttl(self, make_core: CoreFactory, scheduler: FakeScheduler) -> None:
        """default_ttl: the expiry of messages no rule and no publisher gave one (3.1.1 publishers)."""
        core = make_core(push=PushConfig(default_ttl=30, ttl=(TopicTtl(topic="slow/#", ttl=300),)))
        offline_subscriber(core)
        pub = publisher(core, V311)
        publish(core, pub, "fast", b"gone", qos=1)
        publish(core, pub, "slow/x", b"kept", qos=1)
        scheduler.advance(30)
        [delivered] = come_back(core)
        assert delivered.payload == b"kept"
        # Forwarded with what is left of the rule's expiry [MQTT-3.3.2-6].
        assert delivered.properties.message_expiry_interval == 270

    def test_server_side_publish_ttl(self, core: Core, scheduler: FakeScheduler) -> None:
        """The embedded publish takes a ttl argument (seconds)."""
        offline_subscriber(core)
        core.publish("t", b"short", qos=1, ttl=5)
        core.publish("t", b"long", qos=1, ttl=50)
        scheduler.advance(5)
        assert payloads(come_back(core)) == [b"long"]
