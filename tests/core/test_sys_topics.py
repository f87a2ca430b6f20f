"""``$SYS/broker/...`` as Mosquitto publishes it, and the presence events (core/sys_topics.py).

MQTT leaves ``$SYS`` to the server (MQTT 5.0 section 4.7.2: "Applications cannot use a
topic with a leading $ character for their own purposes"); the names, formats and load
averages are Mosquitto 2's.  Driven by the fake clock and scheduler: no sleeps.
"""

from __future__ import annotations

import asyncio
import json
import math
from unittest.mock import MagicMock

from zanzara.core import Core
from zanzara.mqtt.packets import Publish

from .conftest import V5, FakeScheduler, connect, drop, publish, publishes, sent, subscribe

B = "$SYS/broker/"


def watch(core: Core) -> tuple[object, dict[str, bytes]]:
    """A subscriber to ``$SYS/#``, and what it got so far (retained copies included) by topic."""
    client = connect(core, "watcher")
    subscribe(core, client, "$SYS/#")
    return client, got(client)


def got(client: object) -> dict[str, bytes]:
    return {p.topic: p.payload for p in publishes(client.link)}  # type: ignore[attr-defined]


class TestStart:
    def test_everything_is_published_once_retained(self, core: Core) -> None:
        core.start_sys_topics(10)
        _, tree = watch(core)
        assert tree[B + "version"].startswith(b"zanzara ")
        assert tree[B + "uptime"] == b"0 seconds"
        # Mosquitto's names, with the space in "retained messages".
        for name in [
            "clients/total",
            "clients/maximum",
            "clients/connected",
            "clients/active",
            "clients/disconnected",
            "clients/inactive",
            "clients/expired",
            "subscriptions/count",
            "shared_subscriptions/count",
            "messages/received",
            "messages/sent",
            "publish/messages/received",
            "publish/messages/sent",
            "publish/messages/dropped",
            "bytes/received",
            "bytes/sent",
            "zanzara/messages/inflight",
            "zanzara/queue/messages",
            "zanzara/queue/bytes",
            "zanzara/messages/expired",
        ]:
            assert tree[B + name] == b"0", name
        for load in ["messages/received", "publish/dropped", "bytes/sent", "sockets", "connections"]:
            for window in ["1min", "5min", "15min"]:
                assert tree[f"{B}load/{load}/{window}"] == b"0.00"
        # The tree's own retained messages count (as in Mosquitto): those published before it.
        assert tree[B + "retained messages/count"] == tree[B + "store/messages/count"] == b"29"
        assert tree[B + "messages/stored"] == b"29"
        assert int(tree[B + "store/messages/bytes"]) > 0

    def test_retained_copies_are_marked_retained(self, core: Core) -> None:
        """[MQTT-3.3.1-9] a new subscription gets the retained messages with RETAIN set."""
        core.start_sys_topics(10)
        client = connect(core, "s")
        subscribe(core, client, "$SYS/broker/uptime")
        assert sent(client.link) == [Publish(topic=B + "uptime", payload=b"0 seconds", retain=True)]

    def test_interval_0_publishes_nothing(self, core: Core, scheduler: FakeScheduler) -> None:
        core.start_sys_topics(0)
        client, tree = watch(core)
        scheduler.advance(100)
        assert tree == {}
        assert got(client) == {}

    def test_not_stored(self, core: Core) -> None:
        """The tree describes the running broker: no store write (a restart starts afresh)."""
        core.state.store = store = MagicMock()
        core.start_sys_topics(10)
        assert store.method_calls == []
        core.publish("t", b"x", retain=True)
        assert [c[0] for c in store.method_calls] == ["retained_put"]


class TestUpdates:
    def test_only_what_changed(self, core: Core, scheduler: FakeScheduler) -> None:
        core.start_sys_topics(10)
        client = connect(core, "watcher")
        # Not $SYS/#: what it is sent would change messages/sent and the loads at each update.
        subscribe(core, client, "$SYS/broker/clients/+", "$SYS/broker/uptime", "$SYS/broker/version")
        assert len(got(client)) == 9  # the retained copies: 7 clients/..., uptime, version
        connect(core, "other")
        scheduler.advance(10)
        tree = got(client)
        assert tree[B + "uptime"] == b"10 seconds"
        assert tree[B + "clients/connected"] == b"2"
        assert tree[B + "clients/active"] == b"2"
        assert tree[B + "clients/total"] == b"2"
        assert tree[B + "clients/maximum"] == b"2"
        assert B + "clients/disconnected" not in tree  # still 0
        assert B + "version" not in tree
        scheduler.advance(10)
        assert got(client) == {B + "uptime": b"20 seconds"}

    def test_maximum_only_grows(self, core: Core, scheduler: FakeScheduler) -> None:
        core.start_sys_topics(10)
        client, _ = watch(core)
        other = connect(core, "other")
        scheduler.advance(10)
        assert got(client)[B + "clients/maximum"] == b"2"
        drop(core, other)
        scheduler.advance(10)
        tree = got(client)
        assert tree[B + "clients/total"] == b"1"
        assert B + "clients/maximum" not in tree

    def test_counters(self, core: Core, scheduler: FakeScheduler) -> None:
        core.start_sys_topics(10)
        client, _ = watch(core)
        sub = connect(core, "s", clean_start=False, session_expiry_interval=60)
        subscribe(core, sub, "t", "$share/g/u", qos=1)
        sub.link.congested = True  # what comes now waits in its queue
        pub = connect(core, "p")
        publish(core, pub, "t", b"12345", qos=1)
        publish(core, pub, "t", b"x", retain=True)
        publish(core, pub, "$SYS/forged", b"x")
        scheduler.advance(10)
        tree = got(client)
        assert tree[B + "publish/messages/received"] == b"3"
        assert tree[B + "zanzara/publish/refused"] == b"1"
        assert tree[B + "subscriptions/count"] == b"3"
        assert tree[B + "shared_subscriptions/count"] == b"1"
        assert tree[B + "zanzara/queue/messages"] == b"1"
        assert tree[B + "zanzara/queue/bytes"] == b"5"
        assert tree[B + "zanzara/messages/dropped/slow_subscriber"] == b"1"
        assert tree[B + "publish/messages/dropped"] == b"1"
        # Retained: the $SYS tree's own messages and "t".
        count = int(tree[B + "retained messages/count"])
        assert core.state.retained.get("t") is not None
        assert tree[B + "store/messages/count"] == str(count + 1).encode()

    def test_load_is_mosquittos_exponential_average(self, core: Core, scheduler: FakeScheduler) -> None:
        """Per minute; Mosquitto: rate = d * 60 / dt, load = rate + exp(-dt / window) * (load - rate)."""
        core.start_sys_topics(10)
        client, _ = watch(core)
        received = core.stats.messages_received
        pub = connect(core, "p")
        for _ in range(60):
            publish(core, pub, "t", b"x")
        scheduler.advance(10)
        tree = got(client)
        assert core.stats.messages_received - received == 60
        # 60 in 10 s: 360 a minute, weighted by 1 - exp(-10/60) from a load of 0.
        assert tree[B + "load/publish/received/1min"] == b"55.27"
        assert tree[B + "load/publish/received/5min"] == b"11.80"
        assert tree[B + "load/publish/received/15min"] == b"3.98"
        scheduler.advance(10)
        # Nothing more: each decays by exp(-10/window).
        assert got(client)[B + "load/publish/received/1min"] == b"%.2f" % (55.2665 * math.exp(-10 / 60))

    def test_stops_with_the_core(self, core: Core, scheduler: FakeScheduler) -> None:
        core.start_sys_topics(10)
        client, _ = watch(core)
        pending = [t for t in scheduler.pending if getattr(t.callback, "__name__", "") == "update"]
        assert len(pending) == 1
        asyncio.run(core.close())
        scheduler.advance(30)
        assert got(client) == {}


class TestPresence:
    def test_connected_and_disconnected(self, core: Core) -> None:
        core.start_sys_topics(0, presence_node="n1")
        watcher = connect(core, "watcher")
        subscribe(core, watcher, "$SYS/brokers/+/clients/#")
        client = connect(core, "dev/1", version=V5, clean_start=False, session_expiry_interval=30)
        drop(core, client)
        [up, down] = publishes(watcher.link)
        assert up.topic == "$SYS/brokers/n1/clients/dev%2F1/connected"
        assert not up.retain
        body = json.loads(up.payload)
        assert body["client_id"] == "dev/1"
        assert body["address"] == "192.0.2.1:50000"
        assert body["protocol_version"] == 5
        assert body["session_expiry"] == 30
        assert body["clean_start"] is False
        assert body["session_present"] is False
        assert down.topic == "$SYS/brokers/n1/clients/dev%2F1/disconnected"
        assert json.loads(down.payload)["reason"] == "connection_lost"
        assert core.state.retained.get(up.topic) is None

    def test_off_by_default(self, core: Core) -> None:
        core.start_sys_topics(10)
        watcher = connect(core, "watcher")
        subscribe(core, watcher, "$SYS/brokers/#")
        drop(core, connect(core, "c"))
        assert publishes(watcher.link) == []
