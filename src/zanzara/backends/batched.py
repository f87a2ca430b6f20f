"""The Store's write methods, shared by the durable back-ends.

Each write adds its operation (``ops.py``: one class per method, named after
it) to the group commit's batch (``batch.py``); a back-end only says how to
write a batch (``_write``) and how to read.
"""

from __future__ import annotations

import asyncio

from ..message import Message
from ..session import Delivery
from ..storage import DeliveryStatus, QueueRecord, SessionRecord
from ..topic_tree import SubscriptionEntry
from .batch import BatchWriter, CommitTimes
from .ops import (
    IncomingDelete,
    IncomingPut,
    Op,
    OutgoingDelete,
    OutgoingEnqueue,
    OutgoingUpdate,
    ReceiptsPurge,
    RetainedDelete,
    RetainedPut,
    SessionDelete,
    SessionPut,
    SubscriptionDelete,
    SubscriptionPut,
)
from .receipts import ReceiptBuffer

__all__ = ["BatchedStore"]


class BatchedStore:
    """A Store whose writes wait in the group commit's batch; subclasses write and read it."""

    name = "store"

    def __init__(self) -> None:
        self._writer = BatchWriter(self.name, self._write)
        self._receipts = ReceiptBuffer(self._writer)
        self._seq = 0  # enqueue order, kept across restarts by the back-end's load

    async def _write(self, ops: list[Op]) -> None:
        raise NotImplementedError

    def commit(self) -> asyncio.Future[None]:
        return self._writer.commit()

    @property
    def commit_times(self) -> CommitTimes:
        """How long each batch took to write (the group commit's, read by metrics.py)."""
        return self._writer.commit_times

    def session_put(self, record: SessionRecord) -> None:
        self._writer.add(SessionPut(record))

    def session_delete(self, client_id: str) -> None:
        self._writer.add(SessionDelete(client_id))

    def subscription_put(self, entry: SubscriptionEntry) -> None:
        self._writer.add(SubscriptionPut(entry))

    def subscription_delete(self, client_id: str, topic_filter: str) -> None:
        self._writer.add(SubscriptionDelete(client_id, topic_filter))

    def outgoing_enqueue(self, client_id: str, record: QueueRecord) -> None:
        if record.message.message_id is None:
            return  # QoS 0 is never queued for an offline session
        self._seq += 1
        self._writer.add(OutgoingEnqueue(client_id, record, self._seq))

    def outgoing_update(
        self, client_id: str, message_id: str, status: DeliveryStatus, packet_id: int
    ) -> None:
        self._writer.add(OutgoingUpdate(client_id, message_id, status, packet_id))

    def outgoing_delete(self, client_id: str, message_id: str) -> None:
        self._writer.add(OutgoingDelete(client_id, message_id))

    def incoming_put(self, client_id: str, packet_id: int) -> None:
        self._writer.add(IncomingPut(client_id, packet_id))

    def incoming_delete(self, client_id: str, packet_id: int) -> None:
        self._writer.add(IncomingDelete(client_id, packet_id))

    def retained_put(self, message: Message) -> None:
        self._writer.add(RetainedPut(message))

    def retained_delete(self, topic: str) -> None:
        self._writer.add(RetainedDelete(topic))

    def receipt_step(self, status: DeliveryStatus, out: Delivery) -> None:
        self._receipts.step(status, out)

    def receipts_purge(self, before: float) -> None:
        self._writer.add(ReceiptsPurge(before))
