"""Memory store: the Store interface over plain dicts, for tests and throwaway brokers.

Every write is applied at once and :meth:`MemoryStore.commit` is always
already done, so acknowledgements are never delayed.  Nothing survives the
process; what survives a ``close()``/``open()`` within one process is kept in
a :class:`MemoryData` that may be handed to the next store (which is how the
back-end contract tests "restart" it).  Delivery receipts are kept, so
``broker.receipts()`` works with this back-end too.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ..message import Message
from ..session import Delivery
from ..storage import DeliveryStatus, QueueRecord, Receipt, SessionRecord, Snapshot
from ..topic_tree import SubscriptionEntry

__all__ = ["MemoryData", "MemoryStore"]


@dataclass(slots=True)
class MemoryData:
    """What a :class:`MemoryStore` holds, kept apart so that a new store can take it over."""

    sessions: dict[str, SessionRecord] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, SubscriptionEntry]] = field(default_factory=dict)
    # client id -> message id -> record; dicts keep insertion (= enqueue) order.
    queues: dict[str, dict[str, QueueRecord]] = field(default_factory=dict)
    incoming: dict[str, set[int]] = field(default_factory=dict)
    retained: dict[str, Message] = field(default_factory=dict)
    # message id -> client id -> its latest step: the receipt is Receipt.of(status, out), built
    # when read (a delivery's fields do not change after its last step).
    receipts: dict[str, dict[str, tuple[DeliveryStatus, Delivery]]] = field(default_factory=dict)


class MemoryStore:
    """The :class:`~zanzara.storage.Store` in plain dicts: writes apply at once, nothing is durable."""

    name = "memory"

    def __init__(self, data: MemoryData | None = None) -> None:
        self.data = data if data is not None else MemoryData()
        self._done: asyncio.Future[None] | None = None

    async def open(self) -> Snapshot:
        d = self.data
        return Snapshot(
            sessions=list(d.sessions.values()),
            subscriptions=[e for subs in d.subscriptions.values() for e in subs.values()],
            queues={cid: list(q.values()) for cid, q in d.queues.items() if q},
            incoming={cid: set(ids) for cid, ids in d.incoming.items() if ids},
            retained=list(d.retained.values()),
        )

    async def close(self) -> None:
        self._done = None

    def commit(self) -> asyncio.Future[None]:
        # One completed future serves every caller: nothing is ever pending.
        done = self._done
        if done is None:
            done = self._done = asyncio.get_running_loop().create_future()
            done.set_result(None)
        return done

    def session_put(self, record: SessionRecord) -> None:
        self.data.sessions[record.client_id] = record

    def session_delete(self, client_id: str) -> None:
        d = self.data
        d.sessions.pop(client_id, None)
        d.subscriptions.pop(client_id, None)
        d.queues.pop(client_id, None)
        d.incoming.pop(client_id, None)

    def subscription_put(self, entry: SubscriptionEntry) -> None:
        self.data.subscriptions.setdefault(entry.client_id, {})[entry.topic_filter] = entry

    def subscription_delete(self, client_id: str, topic_filter: str) -> None:
        subs = self.data.subscriptions.get(client_id)
        if subs is not None:
            subs.pop(topic_filter, None)

    def outgoing_enqueue(self, client_id: str, record: QueueRecord) -> None:
        mid = record.message.message_id
        if mid is not None:
            self.data.queues.setdefault(client_id, {})[mid] = record

    def outgoing_update(
        self, client_id: str, message_id: str, status: DeliveryStatus, packet_id: int
    ) -> None:
        queue = self.data.queues.get(client_id)
        if queue is not None and (r := queue.get(message_id)) is not None:
            # Not dataclasses.replace, which costs 5x as much, once per message sent.
            queue[message_id] = QueueRecord(
                message=r.message,
                qos=r.qos,
                retain=r.retain,
                subscription_ids=r.subscription_ids,
                status=status,
                packet_id=packet_id,
            )

    def outgoing_delete(self, client_id: str, message_id: str) -> None:
        queue = self.data.queues.get(client_id)
        if queue is not None:
            queue.pop(message_id, None)

    def incoming_put(self, client_id: str, packet_id: int) -> None:
        self.data.incoming.setdefault(client_id, set()).add(packet_id)

    def incoming_delete(self, client_id: str, packet_id: int) -> None:
        ids = self.data.incoming.get(client_id)
        if ids is not None:
            ids.discard(packet_id)

    def retained_put(self, message: Message) -> None:
        self.data.retained[message.topic] = message

    def retained_delete(self, topic: str) -> None:
        self.data.retained.pop(topic, None)

    def receipt_step(self, status: DeliveryStatus, out: Delivery) -> None:
        mid: str = out.message.message_id  # type: ignore[assignment]  # QoS 1/2: it has one
        per_client = self.data.receipts.get(mid)
        if per_client is None:
            self.data.receipts[mid] = {out.client_id: (status, out)}
        else:
            per_client[out.client_id] = (status, out)

    async def receipts(self, message_id: str) -> list[Receipt]:
        per_client = self.data.receipts.get(message_id, {})
        return [Receipt.of(*per_client[cid]) for cid in sorted(per_client)]

    def receipts_purge(self, before: float) -> None:
        receipts = self.data.receipts
        for mid, per_client in list(receipts.items()):
            for cid in [c for c, step in per_client.items() if Receipt.of(*step).updated_at < before]:
                del per_client[cid]
            if not per_client:
                del receipts[mid]
