"""The operator's tools over the core (core/service.py and the server-side publish): views,
kick, end a session, server-side subscribe, purge, targeted push and dry runs.

A kick is MQTT 5's DISCONNECT 0x98 Administrative action (section 3.14.2.1); a server-side
subscription behaves as a SUBSCRIBE would, retained messages included ([MQTT-3.3.1-9]).
"""

from __future__ import annotations

import pytest

from zanzara.core import Core
from zanzara.errors import InvalidArgument
from zanzara.events import DisconnectReason
from zanzara.mqtt.packets import PubAck

from .conftest import (
    RC,
    CoreFactory,
    FakeScheduler,
    connect,
    disconnect,
    disconnect_code,
    drop,
    publishes,
    receive,
    sent,
    subscribe,
    will,
)


class TestViews:
    def test_a_connected_session_and_its_traffic(self, core: Core, scheduler: FakeScheduler) -> None:
        client = connect(core, "dev", username="alice", keep_alive=30, session_expiry_interval=60)
        subscribe(core, client, "a/#", qos=1)
        core.publish("a/1", b"hello", qos=1)
        view = core.session("dev")
        assert view is not None
        assert (view.connected, view.username, view.protocol_version, view.keep_alive) == (
            True,
            "alice",
            5,
            30,
        )
        assert view.session_expiry_interval == 60
        assert view.connected_at == scheduler.clock.now
        assert [s.topic_filter for s in view.subscriptions] == ["a/#"]
        assert (view.inflight, view.queued_messages) == (1, 0)
        assert view.traffic.messages_sent == 1 and view.traffic.bytes_received > 0

    def test_an_offline_session_has_no_connection_fields(self, core: Core, scheduler: FakeScheduler) -> None:
        client = connect(core, "dev", session_expiry_interval=60)
        subscribe(core, client, "a/#", qos=1)
        disconnect(core, client)
        core.publish("a/1", b"x" * 10, qos=1)
        view = core.session("dev")
        assert view is not None
        assert (view.connected, view.address, view.protocol_version) == (False, None, None)
        assert view.disconnected_at == scheduler.clock.now
        assert (view.queued_messages, view.queued_bytes) == (1, 10)
        assert core.session("nobody") is None

    def test_sessions_are_paged_by_client_id(self, core: Core) -> None:
        for cid in ("b", "a", "c", "x-1"):
            connect(core, cid)
        page, cursor = core.list_sessions(limit=2)
        assert [v.client_id for v in page] == ["a", "b"] and cursor == "b"
        page, cursor = core.list_sessions(limit=2, after=cursor)
        assert [v.client_id for v in page] == ["c", "x-1"] and cursor is None
        assert [v.client_id for v in core.list_sessions(prefix="x-")[0]] == ["x-1"]
        assert core.list_sessions(connected=False) == ([], None)

    def test_the_queue_in_flight_first_then_by_priority(self, make_core: CoreFactory) -> None:
        core = make_core(max_inflight_messages=1)
        client = connect(core, "dev")
        subscribe(core, client, "q", qos=1)
        for priority in (1, 5, 9):
            core.publish("q", b"m", qos=1, priority=priority)
        queue = core.queue("dev")
        assert queue is not None
        assert [(q.priority, q.status) for q in queue] == [(1, "sent"), (9, "queued"), (5, "queued")]
        assert core.queue("nobody") is None


class TestKick:
    def test_kick_is_administrative_action_and_keeps_the_session(self, core: Core) -> None:
        """MQTT 5 section 3.14.2.1: 0x98 Administrative action; the will is published."""
        watcher = connect(core, "watcher")
        subscribe(core, watcher, "will/#")
        client = connect(core, "dev", session_expiry_interval=60, will=will())
        assert core.kick("dev") is True
        assert disconnect_code(sent(client.link)) == RC.ADMINISTRATIVE_ACTION  # type: ignore[arg-type]
        assert client.disconnect_reason is DisconnectReason.KICKED
        drop(core, client)
        assert [p.topic for p in publishes(watcher.link)] == ["will/t"]  # type: ignore[arg-type]
        assert "dev" in core.sessions and core.kick("dev") is False

    def test_kick_without_the_will(self, core: Core) -> None:
        watcher = connect(core, "watcher")
        subscribe(core, watcher, "will/#")
        client = connect(core, "dev", will=will())
        core.kick("dev", with_will=False)
        drop(core, client)
        assert publishes(watcher.link) == []  # type: ignore[arg-type]


class TestEndSession:
    def test_ending_a_session_forgets_it_at_once(self, core: Core) -> None:
        client = connect(core, "dev", session_expiry_interval=3600)
        subscribe(core, client, "a/#", qos=1)
        assert core.end_session("dev") is True
        assert "dev" not in core.sessions and "dev" not in core.clients
        assert disconnect_code(sent(client.link)) == RC.ADMINISTRATIVE_ACTION  # type: ignore[arg-type]
        drop(core, client)  # the connection's end, later: nothing more happens
        assert core.publish("a/1", b"x", qos=1).matched == 0
        assert core.end_session("dev") is False

    def test_ending_an_offline_session_cancels_its_expiry(self, core: Core, scheduler: FakeScheduler) -> None:
        disconnect(core, connect(core, "dev", session_expiry_interval=60))
        assert core.end_session("dev") is True
        assert not [t for t in scheduler.pending if t.callback.__name__ == "expire_session"]


class TestServerSideSubscribe:
    def test_a_server_side_subscription_gets_retained_and_live_messages(self, core: Core) -> None:
        core.publish("cfg/a", b"kept", retain=True)
        client = connect(core, "dev")
        assert core.subscribe("dev", "cfg/#", qos=1) is True
        [retained] = publishes(client.link)  # type: ignore[arg-type]
        assert (retained.topic, retained.retain) == ("cfg/a", True)
        core.publish("cfg/b", b"live", qos=1)
        [live] = publishes(client.link)  # type: ignore[arg-type]
        assert (live.payload, live.qos) == (b"live", 1)
        receive(core, client, PubAck(packet_id=live.packet_id))
        assert core.unsubscribe("dev", "cfg/#") is True
        core.publish("cfg/c", b"gone")
        assert publishes(client.link) == []  # type: ignore[arg-type]
        assert core.unsubscribe("dev", "cfg/#") is False

    def test_an_offline_session_queues_what_it_was_subscribed_to(self, core: Core) -> None:
        disconnect(core, connect(core, "dev", session_expiry_interval=60))
        assert core.subscribe("dev", "push/#", qos=1) is True
        assert core.publish("push/1", b"x", qos=1).queued == 1

    @pytest.mark.parametrize("bad", ["a/#/b", "", "a+"])
    def test_filters_no_client_could_subscribe_to_are_refused(self, core: Core, bad: str) -> None:
        connect(core, "dev")
        with pytest.raises(InvalidArgument):
            core.subscribe("dev", bad)

    def test_no_session_no_subscription(self, core: Core) -> None:
        assert core.subscribe("nobody", "a") is False


class TestPurge:
    def test_purge_drops_the_queue_not_the_flight(self, make_core: CoreFactory) -> None:
        core = make_core(max_inflight_messages=1)
        client = connect(core, "dev")
        subscribe(core, client, "q", qos=1)
        for _ in range(3):
            core.publish("q", b"m", qos=1)
        assert core.purge_queue("dev") == 2
        queue = core.queue("dev")
        assert queue is not None and [q.status for q in queue] == ["sent"]
        assert core.stats.drops.get("purged") == 2
        assert core.purge_queue("nobody") is None


class TestServerPublish:
    def test_counts_sent_and_queued(self, core: Core) -> None:
        online = connect(core, "online")
        subscribe(core, online, "t", qos=1)
        disconnect(core, connect(core, "offline", session_expiry_interval=60, clean_start=False))
        core.subscribe("offline", "t", qos=1)
        result = core.publish("t", b"m", qos=1)
        assert (result.matched, result.sent, result.queued) == (2, 1, 1)
        assert result.message_id is not None

    def test_qos0_to_an_offline_session_is_matched_not_sent(self, core: Core) -> None:
        disconnect(core, connect(core, "offline", session_expiry_interval=60))
        core.subscribe("offline", "t")
        result = core.publish("t", b"m")
        assert (result.matched, result.sent, result.queued) == (1, 0, 0)

    def test_targeted_push_reaches_only_the_named(self, core: Core) -> None:
        a, b = connect(core, "a"), connect(core, "b")
        for c in (a, b):
            subscribe(core, c, "t", qos=1)
        result = core.publish("t", b"m", qos=1, client_ids=frozenset({"b", "ghost"}))
        assert (result.matched, result.sent) == (1, 1)
        assert publishes(a.link) == []  # type: ignore[arg-type]
        assert [p.payload for p in publishes(b.link)] == [b"m"]  # type: ignore[arg-type]

    def test_targeted_push_to_a_shared_group_picks_among_the_named(self, core: Core) -> None:
        members = [connect(core, cid) for cid in ("m1", "m2", "m3")]
        for m in members:
            subscribe(core, m, "$share/g/jobs", qos=1)
        for _ in range(3):
            assert core.publish("jobs", b"j", qos=1, client_ids=frozenset({"m3"})).sent == 1
        assert [len(publishes(m.link)) for m in members] == [0, 0, 3]  # type: ignore[arg-type]

    def test_a_targeted_publish_cannot_be_retained(self, core: Core) -> None:
        with pytest.raises(InvalidArgument):
            core.publish("t", b"m", retain=True, client_ids=frozenset({"a"}))

    def test_a_dry_run_counts_and_sends_nothing(self, core: Core) -> None:
        client = connect(core, "a")
        subscribe(core, client, "t/+", qos=1)
        result = core.publish("t/1", b"m", qos=1, retain=True, dry_run=True)
        assert (result.message_id, result.matched, result.sent, result.queued) == (None, 1, 0, 0)
        assert publishes(client.link) == []  # type: ignore[arg-type]
        assert core.retained_message("t/1") is None

    @pytest.mark.parametrize("ttl", [0, -1, 2**32])
    def test_ttl_out_of_range_is_refused(self, core: Core, ttl: int) -> None:
        with pytest.raises(InvalidArgument):
            core.publish("t", b"m", ttl=ttl)


class TestRetained:
    def test_list_get_delete(self, core: Core) -> None:
        core.publish("r/2", b"two", retain=True)
        core.publish("r/1", b"one", retain=True)
        assert [m.topic for m in core.retained("r/+")] == ["r/1", "r/2"]
        assert core.delete_retained("r/1") is True
        assert core.retained_message("r/1") is None
        assert core.delete_retained("r/1") is False
