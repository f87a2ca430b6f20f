"""The Store's write methods, shared by the durable back-ends.

Each write is recorded as an operation tuple ``(kind, *args)`` in the group
commit's batch (``batch.py``); a back-end only says how to write a batch
(``_write``) and how to read.  The vocabulary, in one place:

    ("session_put", SessionRecord)          ("session_delete", cid)
    ("subscription_put", SubscriptionEntry) ("subscription_delete", cid, topic_filter)
    ("enqueue", cid, QueueRecord, seq)      ("update", cid, mid, OutState, packet_id)
    ("dequeue", cid, mid)
    ("incoming_put", cid, packet_id)        ("incoming_delete", cid, packet_id)
    ("retained_put", Message)               ("retained_delete", topic)
    ("receipts_purge", before)              ("receipts",)  a marker: receipt steps ride along
"""

from __future__ import annotations

import asyncio

from ..message import Message
from ..session import Outgoing, OutState
from ..storage import DeliveryStatus, QueueRecord, SessionRecord
from ..topic_tree import SubscriptionEntry
from .batch import BatchWriter, Op
from .receipts import ReceiptBuffer

__all__ = ["BatchedStore"]


class BatchedStore:
    name = "store"

    def __init__(self) -> None:
        self._writer = BatchWriter(self.name, self._write)
        self._receipts = ReceiptBuffer(self._writer)
        self._seq = 0  # enqueue order, kept across restarts by the back-end's load

    async def _write(self, ops: list[Op]) -> None:
        raise NotImplementedError

    def commit(self) -> asyncio.Future[None]:
        return self._writer.commit()

    def session_put(self, record: SessionRecord) -> None:
        self._writer.add(("session_put", record))

    def session_delete(self, client_id: str) -> None:
        self._writer.add(("session_delete", client_id))

    def subscription_put(self, entry: SubscriptionEntry) -> None:
        self._writer.add(("subscription_put", entry))

    def subscription_delete(self, client_id: str, topic_filter: str) -> None:
        self._writer.add(("subscription_delete", client_id, topic_filter))

    def outgoing_enqueue(self, client_id: str, record: QueueRecord) -> None:
        if record.message.message_id is None:
            return  # QoS 0 is never queued for an offline session
        self._seq += 1
        self._writer.add(("enqueue", client_id, record, self._seq))

    def outgoing_update(self, client_id: str, message_id: str, state: OutState, packet_id: int) -> None:
        self._writer.add(("update", client_id, message_id, state, packet_id))

    def outgoing_delete(self, client_id: str, message_id: str) -> None:
        self._writer.add(("dequeue", client_id, message_id))

    def incoming_put(self, client_id: str, packet_id: int) -> None:
        self._writer.add(("incoming_put", client_id, packet_id))

    def incoming_delete(self, client_id: str, packet_id: int) -> None:
        self._writer.add(("incoming_delete", client_id, packet_id))

    def retained_put(self, message: Message) -> None:
        self._writer.add(("retained_put", message))

    def retained_delete(self, topic: str) -> None:
        self._writer.add(("retained_delete", topic))

    def receipt_step(self, status: DeliveryStatus, out: Outgoing) -> None:
        self._receipts.step(status, out)

    def receipts_purge(self, before: float) -> None:
        self._writer.add(("receipts_purge", before))
