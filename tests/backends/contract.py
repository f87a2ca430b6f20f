"""The contract every store back-end passes unchanged (memory, SQLite, Redis).

A back-end's test module subclasses :class:`StoreContract` and provides a
``backend`` fixture: a :class:`Backend` that opens a store on one location
again and again ("restarts") and can count the messages it holds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from zanzara.ids import first_message_id
from zanzara.message import Message
from zanzara.mqtt.packets import Will
from zanzara.mqtt.properties import Properties
from zanzara.session import Delivery
from zanzara.storage import DeliveryStatus, QueueRecord, Receipt, SessionRecord, Snapshot, Store
from zanzara.topic_tree import SubscriptionEntry


@dataclass
class Backend:
    make: Callable[[], Store]  # a new store object on the same location
    # How many messages the location holds (to check "stored once, then collected").
    count_messages: Callable[[Store], Awaitable[int]]


def msg(n: int, **kw: object) -> Message:
    fields: dict[str, object] = {
        "topic": f"t/{n}",
        "payload": b"\x00payload\xff" + str(n).encode(),
        "qos": 1,
        "message_id": f"m{n:04d}",
        "created_at": 1_700_000_000.25 + n,
        "priority": n % 7,
    }
    fields.update(kw)
    return Message(**fields)  # type: ignore[arg-type]


class StoreContract:
    async def restart(self, backend: Backend, store: Store | None) -> tuple[Store, Snapshot]:
        if store is not None:
            await store.close()
        new = backend.make()
        return new, await new.open()

    async def test_a_new_store_is_empty(self, backend: Backend) -> None:
        store, snap = await self.restart(backend, None)
        assert snap == Snapshot()
        await store.commit()
        await store.close()

    async def test_sessions_and_subscriptions_survive(self, backend: Backend) -> None:
        store, _ = await self.restart(backend, None)
        store.session_put(SessionRecord(client_id="a", expiry_interval=3600))
        store.session_put(SessionRecord(client_id="b", expiry_interval=60, disconnected_at=1234.5))
        subs = [
            SubscriptionEntry(client_id="a", topic_filter="x/#", qos=1),
            SubscriptionEntry(
                client_id="a", topic_filter="y/+", qos=2, no_local=True, retain_as_published=True,
                subscription_id=42,
            ),
            SubscriptionEntry(client_id="b", topic_filter="$share/g/z", qos=0, share_group="g"),
            SubscriptionEntry(client_id="b", topic_filter="gone", qos=1),
        ]  # fmt: skip
        for entry in subs:
            store.subscription_put(entry)
        store.subscription_delete("b", "gone")
        # A later put replaces the earlier one (a reconnect changes the expiry, the will goes).
        will = Will(
            topic="status/c",
            payload=b"\x00offline",
            qos=2,
            retain=True,
            properties=Properties(will_delay_interval=30, content_type="text/plain"),
        )
        store.session_put(SessionRecord(client_id="a", expiry_interval=100, will=will))
        store.session_put(SessionRecord(client_id="a", expiry_interval=7200))
        store.session_put(SessionRecord(client_id="c", expiry_interval=5, will=will))
        # A per-device quota from the authentication hook is kept with the session.
        store.session_put(SessionRecord(client_id="d", expiry_interval=9, max_queued=2, max_queued_bytes=512))
        await store.commit()
        store, snap = await self.restart(backend, store)
        assert sorted(snap.sessions, key=lambda s: s.client_id) == [
            SessionRecord(client_id="a", expiry_interval=7200),
            SessionRecord(client_id="b", expiry_interval=60, disconnected_at=1234.5),
            SessionRecord(client_id="c", expiry_interval=5, will=will),
            SessionRecord(client_id="d", expiry_interval=9, max_queued=2, max_queued_bytes=512),
        ]
        key = lambda e: (e.client_id, e.topic_filter)  # noqa: E731
        assert sorted(snap.subscriptions, key=key) == sorted(subs[:3], key=key)
        await store.close()

    async def test_queues_keep_order_state_and_every_message_field(self, backend: Backend) -> None:
        store, _ = await self.restart(backend, None)
        rich = msg(
            1,
            qos=2,
            retain=True,
            properties=Properties(
                content_type="text/plain",
                response_topic="r/1",
                correlation_data=b"\x01\x02",
                payload_format_indicator=1,
                user_properties=(("k", "v"), ("k", "v2")),
            ),
            expires_at=1_800_000_000.5,
            sender="pub",
            collapse_key="score",
        )
        records = [
            QueueRecord(message=rich, qos=2, retain=True, subscription_ids=(3, 9)),
            *(QueueRecord(message=msg(n), qos=1, retain=False) for n in range(2, 40)),
        ]
        for cid in ("a", "b"):
            store.session_put(SessionRecord(client_id=cid, expiry_interval=100))
        for rec in records:
            store.outgoing_enqueue("a", rec)
        store.outgoing_enqueue("b", records[5])
        store.outgoing_update("a", "m0002", DeliveryStatus.SENT, 17)
        store.outgoing_update("a", "m0001", DeliveryStatus.RELEASED, 18)
        store.outgoing_delete("a", "m0010")
        await store.commit()
        store, snap = await self.restart(backend, store)
        queue = snap.queues["a"]
        expected_ids = [r.message.message_id for r in records if r.message.message_id != "m0010"]
        assert [r.message.message_id for r in queue] == expected_ids
        assert queue[0].message == rich
        assert (queue[0].status, queue[0].packet_id, queue[0].subscription_ids) == (
            DeliveryStatus.RELEASED,
            18,
            (3, 9),
        )
        assert (queue[1].status, queue[1].packet_id) == (DeliveryStatus.SENT, 17)
        assert all(r.status is DeliveryStatus.QUEUED and r.packet_id == 0 for r in queue[2:])
        assert queue[5].message == msg(6)
        assert [r.message.message_id for r in snap.queues["b"]] == ["m0006"]
        await store.close()

    async def test_a_message_is_stored_once_and_collected(self, backend: Backend) -> None:
        store, _ = await self.restart(backend, None)
        shared = msg(1, retain=True)
        for cid in ("a", "b", "c"):
            store.session_put(SessionRecord(client_id=cid, expiry_interval=100))
            store.outgoing_enqueue(cid, QueueRecord(message=shared, qos=1, retain=False))
        store.retained_put(shared)
        await store.commit()
        assert await backend.count_messages(store) == 1
        store.outgoing_delete("a", "m0001")
        store.session_delete("b")
        store.retained_delete(shared.topic)
        await store.commit()
        assert await backend.count_messages(store) == 1  # "c" still holds it
        store, snap = await self.restart(backend, store)
        assert [r.message for r in snap.queues["c"]] == [shared]
        assert "a" not in snap.queues and "b" not in snap.queues
        store.outgoing_delete("c", "m0001")
        await store.commit()
        assert await backend.count_messages(store) == 0
        await store.close()

    async def test_a_message_let_go_and_held_again_in_one_batch_stays(self, backend: Backend) -> None:
        store, _ = await self.restart(backend, None)
        for cid in ("a", "b"):
            store.session_put(SessionRecord(client_id=cid, expiry_interval=100))
        store.outgoing_enqueue("a", QueueRecord(message=msg(1), qos=1, retain=False))
        await store.commit()
        # One batch: its last holder lets it go, then another queue holds it.
        store.outgoing_delete("a", "m0001")
        store.outgoing_enqueue("b", QueueRecord(message=msg(1), qos=1, retain=False))
        await store.commit()
        assert await backend.count_messages(store) == 1
        store, snap = await self.restart(backend, store)
        assert {cid: [r.message for r in q] for cid, q in snap.queues.items()} == {"b": [msg(1)]}
        # And the other way round: held by a new queue, then its old one goes, in one batch.
        store.session_delete("b")
        store.outgoing_enqueue("a", QueueRecord(message=msg(1), qos=1, retain=False))
        await store.commit()
        store, snap = await self.restart(backend, store)
        assert {cid: [r.message for r in q] for cid, q in snap.queues.items()} == {"a": [msg(1)]}
        assert await backend.count_messages(store) == 1
        await store.close()

    async def test_session_delete_removes_everything_of_it(self, backend: Backend) -> None:
        store, _ = await self.restart(backend, None)
        for cid in ("a", "b"):
            store.session_put(SessionRecord(client_id=cid, expiry_interval=100))
            store.subscription_put(SubscriptionEntry(client_id=cid, topic_filter="t", qos=1))
            store.outgoing_enqueue(cid, QueueRecord(message=msg(1), qos=1, retain=False))
            store.incoming_put(cid, 7)
        store.session_delete("a")
        await store.commit()
        store, snap = await self.restart(backend, store)
        assert [s.client_id for s in snap.sessions] == ["b"]
        assert [e.client_id for e in snap.subscriptions] == ["b"]
        assert list(snap.queues) == ["b"]
        assert snap.incoming == {"b": {7}}
        await store.close()

    async def test_incoming_qos2_ids_survive(self, backend: Backend) -> None:
        store, _ = await self.restart(backend, None)
        store.session_put(SessionRecord(client_id="a", expiry_interval=100))
        for pid in (1, 2, 65535):
            store.incoming_put("a", pid)
        store.incoming_delete("a", 2)
        store.incoming_put("a", 1)  # a resent PUBLISH: recorded again, still once
        await store.commit()
        store, snap = await self.restart(backend, store)
        assert snap.incoming == {"a": {1, 65535}}
        await store.close()

    async def test_retained_messages_replace_and_clear(self, backend: Backend) -> None:
        store, _ = await self.restart(backend, None)
        store.retained_put(msg(1, topic="r/a", retain=True))
        store.retained_put(msg(2, topic="r/b", retain=True))
        store.retained_put(msg(3, topic="r/a", retain=True, payload=b"newer"))
        store.retained_put(msg(4, topic="r/c", retain=True))
        store.retained_delete("r/c")
        await store.commit()
        assert await backend.count_messages(store) == 2  # the replaced and cleared ones are gone
        store, snap = await self.restart(backend, store)
        assert sorted((m.topic, m.payload) for m in snap.retained) == [
            ("r/a", b"newer"),
            ("r/b", msg(2).payload),
        ]
        await store.close()

    async def test_receipts_latest_state_per_recipient_and_survive(self, backend: Backend) -> None:
        store, _ = await self.restart(backend, None)
        a = Delivery(message=msg(1), qos=1, retain=False, client_id="a", queued_at=100.0)
        b = Delivery(message=msg(1), qos=1, retain=False, client_id="b", queued_at=100.0)
        c = Delivery(message=msg(1), qos=1, retain=False, client_id="c", queued_at=100.0)
        store.receipt_step(DeliveryStatus.QUEUED, a)
        store.receipt_step(DeliveryStatus.QUEUED, b)
        store.receipt_step(DeliveryStatus.QUEUED, c)
        a.sent_at = c.sent_at = 101.0
        store.receipt_step(DeliveryStatus.SENT, a)
        store.receipt_step(DeliveryStatus.SENT, c)
        a.acknowledged_at = 102.0
        store.receipt_step(DeliveryStatus.ACKNOWLEDGED, a)
        b.finished_at, b.reason = 103.0, "queue full"
        store.receipt_step(DeliveryStatus.DROPPED, b)
        got = await store.receipts("m0001")  # readable at once, before any restart
        acked = Receipt("m0001", "a", DeliveryStatus.ACKNOWLEDGED, 100.0, 101.0, 102.0)
        dropped = Receipt("m0001", "b", DeliveryStatus.DROPPED, 100.0, None, None, 103.0, "queue full")
        sent = Receipt("m0001", "c", DeliveryStatus.SENT, 100.0, 101.0)
        assert got == [acked, dropped, sent]
        # A step after the receipt was written replaces it.
        c.acknowledged_at = 104.0
        store.receipt_step(DeliveryStatus.ACKNOWLEDGED, c)
        store, _ = await self.restart(backend, store)
        got = await store.receipts("m0001")
        later = sent._replace(status=DeliveryStatus.ACKNOWLEDGED, acknowledged_at=104.0)
        assert got == [acked, dropped, later]
        assert await store.receipts("unknown") == []
        await store.close()

    async def test_each_step_is_stored_as_its_receipt(self, backend: Backend) -> None:
        # Receipt.of(status, out) for every status, whether the store builds it at the step or
        # when it writes it.
        store, _ = await self.restart(backend, None)
        outs = {
            DeliveryStatus.QUEUED: Delivery(
                message=msg(1), qos=1, retain=False, client_id="a", queued_at=10.0
            ),
            DeliveryStatus.SENT: Delivery(message=msg(1), qos=1, retain=False, client_id="b", sent_at=11.0),
            DeliveryStatus.ACKNOWLEDGED: Delivery(
                message=msg(1), qos=2, retain=False, client_id="c", queued_at=10.0, sent_at=11.0,
                acknowledged_at=12.5,
            ),
            DeliveryStatus.EXPIRED: Delivery(
                message=msg(1), qos=1, retain=False, client_id="d", queued_at=10.0, finished_at=13.0,
                reason="message expiry",
            ),
            DeliveryStatus.DROPPED: Delivery(
                message=msg(1), qos=1, retain=False, client_id="e", queued_at=10.0, sent_at=11.0,
                finished_at=14.0, reason="session ended",
            ),
        }  # fmt: skip
        for status, out in outs.items():
            store.receipt_step(status, out)
        expected = [Receipt.of(status, out) for status, out in outs.items()]
        assert expected[1].queued_at is None  # queued_at 0.0: not known (restored after a restart)
        assert [r.updated_at for r in expected] == [10.0, 11.0, 12.5, 13.0, 14.0]
        assert await store.receipts("m0001") == expected
        store, _ = await self.restart(backend, store)
        assert await store.receipts("m0001") == expected
        await store.close()

    async def test_receipts_purged_by_age(self, backend: Backend) -> None:
        # Message ids are ULIDs, made here for messages created at 10 s (see Store.receipts_purge).
        old, mix = first_message_id(10.0), first_message_id(10.0)[:-1] + "1"
        store, _ = await self.restart(backend, None)

        def sent(message_id: str, cid: str, at: float) -> Delivery:
            m = msg(1, message_id=message_id)
            return Delivery(message=m, qos=1, retain=False, client_id=cid, sent_at=at)

        store.receipt_step(DeliveryStatus.SENT, sent(old, "a", 10.0))
        store.receipt_step(DeliveryStatus.SENT, sent(mix, "a", 10.0))
        store.receipt_step(DeliveryStatus.SENT, sent(mix, "b", 500.0))
        await store.receipts(old)  # written
        store.receipts_purge(100.0)
        await store.commit()
        assert await store.receipts(old) == []
        assert [r.client_id for r in await store.receipts(mix)] == ["b"]  # updated after the cut-off
        await store.close()

    async def test_many_entries_in_one_batch(self, backend: Backend) -> None:
        store, _ = await self.restart(backend, None)
        store.session_put(SessionRecord(client_id="big", expiry_interval=100))
        for n in range(3000):
            store.outgoing_enqueue("big", QueueRecord(message=msg(n, topic="big"), qos=1, retain=False))
        await store.commit()
        store, snap = await self.restart(backend, store)
        assert [r.message.message_id for r in snap.queues["big"]] == [f"m{n:04d}" for n in range(3000)]
        await store.close()

    async def test_mixed_queue_operations_in_one_batch(self, backend: Backend) -> None:
        # Several clients and every kind of queue operation in one batch, some on the same
        # entry: what survives is each entry's last state.
        store, _ = await self.restart(backend, None)
        for cid in ("a", "b"):
            store.session_put(SessionRecord(client_id=cid, expiry_interval=100))
            for n in (1, 2, 3):
                store.outgoing_enqueue(cid, QueueRecord(message=msg(n), qos=2, retain=False))
        await store.commit()
        store.outgoing_update("a", "m0001", DeliveryStatus.SENT, 11)
        store.outgoing_update("a", "m0001", DeliveryStatus.RELEASED, 11)
        store.outgoing_delete("a", "m0002")
        store.outgoing_update("a", "m0002", DeliveryStatus.SENT, 12)  # stale: it is gone
        store.outgoing_update("b", "m0003", DeliveryStatus.SENT, 13)
        store.outgoing_update("b", "m0003", DeliveryStatus.QUEUED, 0)  # back to the queue (reconnect)
        store.outgoing_enqueue("b", QueueRecord(message=msg(4), qos=1, retain=True, subscription_ids=(3,)))
        store.outgoing_update("b", "m0004", DeliveryStatus.SENT, 14)
        store.outgoing_delete("b", "m0001")
        await store.commit()
        store, snap = await self.restart(backend, store)
        got = {
            cid: [(r.message.message_id, r.status, r.packet_id, r.retain, r.subscription_ids) for r in q]
            for cid, q in snap.queues.items()
        }
        s = DeliveryStatus
        assert got == {
            "a": [("m0001", s.RELEASED, 11, False, ()), ("m0003", s.QUEUED, 0, False, ())],
            "b": [("m0002", s.QUEUED, 0, False, ()), ("m0003", s.QUEUED, 0, False, ()),
                  ("m0004", s.SENT, 14, True, (3,))],
        }  # fmt: skip
        assert await backend.count_messages(store) == 4
        await store.close()


async def count_memory(store: Store) -> int:
    from zanzara.backends.memory import MemoryStore

    assert isinstance(store, MemoryStore)
    d = store.data
    ids = {r.message.message_id for q in d.queues.values() for r in q.values()}
    ids.update(m.message_id for m in d.retained.values())
    return len(ids)
