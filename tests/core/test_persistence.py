"""Acknowledgements after the commit, a restart from the store, delivery receipts.

Not a section of the spec but what its durability promises rest on: a
PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK or UNSUBACK leaves once what it
acknowledges is durable (group commit), in the client's order whatever order
the commits finish in; a failed commit gets a negative ack (v5) or a closed
connection.  :class:`HeldStore` is the memory store with commits the test
completes by hand (no event loop: its futures run their callbacks at once).
A restart is a new core attached to the same data, with the fake clock moved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from zanzara.backends.memory import MemoryData, MemoryStore
from zanzara.config import PushConfig
from zanzara.core import Core
from zanzara.errors import StoreError
from zanzara.mqtt.packets import (
    PubAck,
    PubComp,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
)
from zanzara.mqtt.properties import Properties
from zanzara.storage import DeliveryStatus

from .conftest import (
    RC,
    V311,
    CoreFactory,
    FakeScheduler,
    connect,
    drop,
    message,
    publish,
    receive,
    sent,
    settle,
    subscribe,
    will,
)


class Commit:
    """A commit's future, completed by the test; callbacks run at once (no event loop)."""

    def __init__(self) -> None:
        self._done = False
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[Any], object]] = []

    def done(self) -> bool:
        return self._done

    def exception(self) -> BaseException | None:
        return self._error

    def add_done_callback(self, callback: Callable[[Any], object]) -> None:
        if self._done:
            callback(self)
        else:
            self._callbacks.append(callback)

    def finish(self, error: BaseException | None = None) -> None:
        self._done, self._error = True, error
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)


class HeldStore(MemoryStore):
    """The memory store; while ``holding``, one pending commit per batch until the test ends it."""

    def __init__(self, data: MemoryData | None = None) -> None:
        super().__init__(data)
        self.holding = False
        self.batch = Commit()

    def commit(self) -> Commit:  # type: ignore[override]
        if self.holding:
            return self.batch
        done = Commit()
        done.finish()
        return done

    def flush(self, error: BaseException | None = None) -> None:
        """The current batch is written (or fails); later writes go in the next one."""
        batch, self.batch = self.batch, Commit()
        batch.finish(error)


def with_store(
    make_core: CoreFactory, data: MemoryData | None = None, *, holding: bool = False, **kw: Any
) -> tuple[Core, HeldStore]:
    """A core over a HeldStore on ``data`` (a restart when ``data`` was used before)."""
    core = make_core(**kw)
    store = HeldStore(data)
    core.attach_store(store, settle(store.open()))
    store.holding = holding
    return core, store


def persistent(**kw: Any) -> dict[str, Any]:
    return {"clean_start": False, "session_expiry_interval": 3600, **kw}


class TestAcksAfterCommit:
    def test_puback_waits_for_the_commit(self, make_core: CoreFactory) -> None:
        """The publisher's PUBACK leaves once the message is durable, not before."""
        core, store = with_store(make_core, holding=True, push=PushConfig(ack_message_id=False))
        pub = connect(core, "p", version=V311)
        publish(core, pub, "t", qos=1, packet_id=1)
        assert sent(pub.link) == []
        store.flush()
        assert sent(pub.link) == [PubAck(packet_id=1)]

    def test_acks_leave_in_order_whatever_commits_first(self, make_core: CoreFactory) -> None:
        """A later ack whose commit is done already waits behind an earlier one still pending."""
        core, store = with_store(make_core, holding=True)
        pub = connect(core, "p", version=V311)
        publish(core, pub, "t", qos=1, packet_id=1)
        store.holding = False
        publish(core, pub, "t", qos=2, packet_id=2)  # its commit is done at once
        assert sent(pub.link) == []
        store.flush()
        assert sent(pub.link) == [PubAck(packet_id=1), PubRec(packet_id=2)]

    def test_failed_commit_v5_gets_a_negative_ack(self, make_core: CoreFactory) -> None:
        """A v5 publisher whose message could not be stored: PUBACK 0x80 "store unavailable"."""
        core, store = with_store(make_core, holding=True)
        pub = connect(core, "p")
        publish(core, pub, "t", qos=1, packet_id=1)
        store.flush(StoreError("disk full"))
        assert sent(pub.link) == [
            PubAck(
                packet_id=1,
                reason_code=RC.UNSPECIFIED_ERROR,
                properties=Properties(reason_string="store unavailable"),
            )
        ]

    def test_failed_commit_v311_closes_the_connection(self, make_core: CoreFactory) -> None:
        """3.1.1 has no negative PUBACK: the connection closes, so that the client resends."""
        core, store = with_store(make_core, holding=True)
        pub = connect(core, "p", version=V311)
        publish(core, pub, "t", qos=1, packet_id=1)
        store.flush(StoreError("disk full"))
        assert sent(pub.link) == []
        assert pub.link.closed  # type: ignore[attr-defined]
        assert pub.disconnect_reason == "store_failure"

    def test_suback_waits_and_fails_whole(self, make_core: CoreFactory) -> None:
        """SUBACK after the subscriptions are durable; if they are not, every filter is refused."""
        core, store = with_store(make_core, holding=True)
        client = connect(core, "c", **persistent())
        receive(core, client, Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="a", qos=1),)))
        assert sent(client.link) == []
        store.flush()
        assert sent(client.link) == [SubAck(packet_id=1, reason_codes=(1,))]
        receive(core, client, Subscribe(packet_id=2, subscriptions=(Subscription(topic_filter="b"),)))
        store.flush(StoreError("disk full"))
        assert sent(client.link) == [SubAck(packet_id=2, reason_codes=(0x80,))]

    def test_unsuback_pubrel_pubcomp_wait_too(self, make_core: CoreFactory) -> None:
        """The PUBREL of our QoS 2 delivery, the PUBCOMP of the client's, UNSUBACK: after the commit."""
        core, store = with_store(make_core, holding=True, push=PushConfig(ack_message_id=False))
        client = connect(core, "c", **persistent())
        receive(core, client, Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="t", qos=2),)))
        store.flush()
        sent(client.link)
        core.publish("t", b"x", qos=2)
        assert sent(client.link) == [message("t", b"x", qos=2, packet_id=1)]
        receive(core, client, PubRec(packet_id=1))
        assert sent(client.link) == []
        store.flush()
        assert sent(client.link) == [PubRel(packet_id=1)]
        publish(core, client, "other", qos=2, packet_id=9)
        store.flush()
        assert sent(client.link) == [PubRec(packet_id=9, reason_code=RC.NO_MATCHING_SUBSCRIBERS)]
        receive(core, client, PubRel(packet_id=9), Unsubscribe(packet_id=3, topic_filters=("t",)))
        assert sent(client.link) == []
        store.flush()
        assert sent(client.link) == [PubComp(packet_id=9), UnsubAck(packet_id=3, reason_codes=(0,))]


class TestRestart:
    def test_sessions_subscriptions_and_queues_survive(self, make_core: CoreFactory) -> None:
        """After a restart the session is present, its subscription matches, its queue is delivered."""
        core, store = with_store(make_core)
        client = connect(core, "c", **persistent())
        subscribe(core, client, "t", qos=1)
        drop(core, client)
        core.publish("t", b"waiting", qos=1)
        core.publish("r", b"kept", retain=True)
        core, store = with_store(make_core, store.data)
        again = connect(core, "c", **persistent())
        assert again.link.connack is not None
        assert again.link.connack.session_present
        assert sent(again.link) == [message("t", b"waiting", qos=1, packet_id=1)]
        core.publish("t", b"new", qos=1)
        assert sent(again.link) == [message("t", b"new", qos=1, packet_id=2)]
        subscribe(core, again, "r", packet_id=2)
        assert sent(again.link) == [message("r", b"kept", retain=True)]

    def test_inflight_is_resent_with_dup_and_incoming_ids_kept(self, make_core: CoreFactory) -> None:
        """[MQTT-4.4.0-1] what was in flight before the restart is resent; QoS 2 ids still held."""
        core, store = with_store(make_core, push=PushConfig(ack_message_id=False))
        client = connect(core, "c", **persistent())
        subscribe(core, client, "t", qos=1)
        core.publish("t", b"x", qos=1)
        publish(core, client, "elsewhere", qos=2, packet_id=5)
        sent(client.link)
        core, store = with_store(make_core, store.data, push=PushConfig(ack_message_id=False))
        again = connect(core, "c", **persistent())
        assert sent(again.link) == [message("t", b"x", qos=1, packet_id=1, dup=True)]
        receive(core, again, PubRel(packet_id=5))
        assert sent(again.link) == [PubComp(packet_id=5)]

    def test_expiry_counts_the_time_down(self, make_core: CoreFactory, scheduler: FakeScheduler) -> None:
        """Session expiry counts from the disconnection, across the restart."""
        core, store = with_store(make_core)
        drop(core, connect(core, "c", **persistent(session_expiry_interval=100)))
        scheduler.advance(60)
        core, store = with_store(make_core, store.data)
        assert "c" in core.sessions
        scheduler.advance(39)
        assert "c" in core.sessions
        scheduler.advance(1)
        assert "c" not in core.sessions
        assert "c" not in store.data.sessions

    def test_a_delayed_will_survives_with_what_is_left(
        self, make_core: CoreFactory, scheduler: FakeScheduler
    ) -> None:
        """[MQTT-3.1.2-8] a will waiting for its delay is published after the restart, on time."""
        core, store = with_store(make_core)
        dev = connect(core, "dev", will=will("will/dev", b"offline", will_delay_interval=30), **persistent())
        drop(core, dev)
        scheduler.advance(10)
        core, store = with_store(make_core, store.data)
        watcher = connect(core, "w")
        subscribe(core, watcher, "will/#")
        scheduler.advance(19)
        assert sent(watcher.link) == []
        scheduler.advance(1)
        assert sent(watcher.link) == [message("will/dev", b"offline")]


class TestReceipts:
    @pytest.mark.parametrize("qos", [1, 2])
    def test_queued_sent_acknowledged(
        self, make_core: CoreFactory, scheduler: FakeScheduler, qos: int
    ) -> None:
        """[push] track_deliveries: each step of a delivery is noted, with its time."""
        core, store = with_store(make_core)
        client = connect(core, "c", **persistent())
        subscribe(core, client, "t", qos=2)
        drop(core, client)
        result = core.publish("t", b"x", qos=qos)
        assert result.message_id is not None
        [receipt] = settle(store.receipts(result.message_id))
        assert receipt.status is DeliveryStatus.QUEUED
        queued_at = scheduler.clock.now
        scheduler.advance(5)
        again = connect(core, "c", **persistent())
        sent(again.link)
        scheduler.advance(1)
        if qos == 1:
            receive(core, again, PubAck(packet_id=1))
        else:
            receive(core, again, PubRec(packet_id=1), PubComp(packet_id=1))
        [receipt] = settle(store.receipts(result.message_id))
        assert receipt.status is DeliveryStatus.ACKNOWLEDGED
        assert (receipt.queued_at, receipt.sent_at, receipt.acknowledged_at) == (
            queued_at,
            queued_at + 5,
            queued_at + 6,
        )

    def test_refused_and_dropped_say_why(self, make_core: CoreFactory) -> None:
        """A v5 PUBACK error code and a full queue end up in the receipt's reason."""
        core, store = with_store(make_core, max_queued_messages=1)
        live = connect(core, "live")
        subscribe(core, live, "live", qos=1)
        refused = core.publish("live", b"x", qos=1)
        receive(core, live, PubAck(packet_id=1, reason_code=RC.NOT_AUTHORIZED))
        away = connect(core, "away", **persistent())
        subscribe(core, away, "away", qos=1)
        drop(core, away)
        lost = core.publish("away", b"1", qos=1)
        core.publish("away", b"2", qos=1)
        assert refused.message_id is not None
        assert lost.message_id is not None
        [receipt] = settle(store.receipts(refused.message_id))
        assert receipt.reason == "PUBACK reason code 0x87 (not authorized)"
        [receipt] = settle(store.receipts(lost.message_id))
        assert (receipt.status, receipt.reason) == (DeliveryStatus.DROPPED, "queue full")
