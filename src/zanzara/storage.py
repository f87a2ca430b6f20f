"""Store Protocols: what the broker persists, named by direction as in Aedes.

Writes are *recorded* synchronously (cheap: appended to the current batch)
and become durable together when the batch commits; :meth:`Store.commit`
returns an awaitable that completes when everything recorded so far is
durable.  The broker acknowledges a QoS 1/2 PUBLISH (PUBACK/PUBREC) and a
SUBSCRIBE (SUBACK) only after that awaitable completes, and the embedded
``Broker.publish`` of a QoS 1/2 message returns only then, so an acknowledged
message is never lost (group commit: one transaction and one fsync for many
messages).

A message is stored once, with the first queue entry that holds it
(``outgoing_enqueue``), and referenced by every later one; it is deleted when
nothing references it any more (the durable back-ends count its holders).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from operator import attrgetter
from typing import NamedTuple, Protocol

from .message import Message
from .mqtt.packets import Will
from .session import Delivery, DeliveryStatus
from .topic_tree import SubscriptionEntry

__all__ = [
    "LATER_STEP_TIMES",
    "DeliveryStatus",
    "QueueRecord",
    "Receipt",
    "SessionRecord",
    "Snapshot",
    "Store",
    "overtaken",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRecord:
    """A session as a store keeps it, without its subscriptions and queue (stored apart)."""

    client_id: str
    expiry_interval: int
    # Wall-clock time the client disconnected; None while connected.
    disconnected_at: float | None = None
    # The will to publish if the connection ends abnormally (while connected), or the
    # delayed will waiting to be published (after a disconnect); None once it is gone.
    will: Will | None = None
    # The per-device queue quota an authentication hook gave (None: the configured one), so
    # that it holds for messages queued while the device is away across a restart.
    max_queued: int | None = None
    max_queued_bytes: int | None = None


@dataclass(slots=True, kw_only=True)
class QueueRecord:
    """One message on its way to one session, as stored (one per persistent delivery: not frozen,
    which would triple its construction cost; nothing mutates it)."""

    message: Message
    qos: int
    retain: bool
    subscription_ids: tuple[int, ...] = ()
    status: DeliveryStatus = DeliveryStatus.QUEUED
    packet_id: int = 0

    @classmethod
    def of(cls, delivery: Delivery) -> QueueRecord:
        """What is stored of ``delivery``."""
        return cls(
            message=delivery.message,
            qos=delivery.qos,
            retain=delivery.retain,
            subscription_ids=delivery.subscription_ids,
            status=delivery.status,
            packet_id=delivery.packet_id,
        )

    def delivery(self, client_id: str) -> Delivery:
        """The delivery to ``client_id`` this record was stored for (when a store is loaded)."""
        return Delivery(
            message=self.message,
            qos=self.qos,
            retain=self.retain,
            subscription_ids=self.subscription_ids,
            packet_id=self.packet_id,
            status=self.status,
            client_id=client_id,
        )


@dataclass(slots=True, kw_only=True)
class Snapshot:
    """Everything a store holds, loaded at start before listeners open."""

    sessions: list[SessionRecord] = field(default_factory=list)
    subscriptions: list[SubscriptionEntry] = field(default_factory=list)
    # client id -> entries in delivery order (inflight first, by packet send order)
    queues: dict[str, list[QueueRecord]] = field(default_factory=dict)
    incoming: dict[str, set[int]] = field(default_factory=dict)
    retained: list[Message] = field(default_factory=list)


class Receipt(NamedTuple):
    """What happened to one message for one recipient. Times are wall-clock seconds.

    A named tuple rather than a dataclass: it is built faster and is already the row a store
    writes.  Receipts are read back as these; while a delivery is under way its receipt lives in
    its Delivery's fields (see :meth:`Store.receipt_step`).
    """

    message_id: str
    client_id: str
    status: DeliveryStatus
    queued_at: float | None = None
    sent_at: float | None = None
    acknowledged_at: float | None = None
    # When it expired or was dropped, and why ("queue full", "collapsed", "session ended", ...);
    # for an acknowledgement, the error reason code a v5 client gave ("PUBACK reason code 0x87 ...").
    finished_at: float | None = None
    reason: str | None = None

    @property
    def updated_at(self) -> float:
        """When its latest step happened (what retention counts from)."""
        return self.finished_at or self.acknowledged_at or self.sent_at or self.queued_at or 0.0

    @classmethod
    def of(cls, status: DeliveryStatus, out: Delivery) -> Receipt:
        """The receipt of ``out`` when it reached ``status`` (see :meth:`Store.receipt_step`)."""
        mid = out.message.message_id
        assert mid is not None  # an Delivery is QoS 1/2, and those messages have ids
        return cls(
            mid, out.client_id, status, out.queued_at or None, out.sent_at, out.acknowledged_at,
            out.finished_at, out.reason,
        )  # fmt: skip


# For each step a later one can overtake, the Delivery times that later steps set (the rule of
# overtaken(); the SQLite store applies it in C and in SQL from these names).
LATER_STEP_TIMES: dict[DeliveryStatus, tuple[str, str]] = {
    DeliveryStatus.QUEUED: ("sent_at", "finished_at"),
    DeliveryStatus.SENT: ("acknowledged_at", "finished_at"),
}
_LATER_TIMES = {status: attrgetter(*names) for status, names in LATER_STEP_TIMES.items()}
_NOT_YET = (None, None)


def overtaken(status: DeliveryStatus, out: Delivery) -> bool:
    """A later step of ``out`` happened since it reached ``status``: that one's receipt replaces it."""
    later = _LATER_TIMES.get(status)
    return later is not None and later(out) != _NOT_YET


class Store(Protocol):
    """Where the broker persists sessions, subscriptions, queues, retained messages and receipts.

    Called on the event loop only: a write method records and returns at once (it
    must not block or await), and :meth:`commit` says when the writes are durable.  ``name``
    appears in logs and errors.
    """

    name: str

    async def open(self) -> Snapshot:
        """Connect/create and load what survives from the last run."""

    async def close(self) -> None:
        """Commit what is pending and release resources."""

    def commit(self) -> asyncio.Future[None]:
        """Done when every write recorded before this call is durable; fails with StoreError."""

    # -- sessions and subscriptions ---------------------------------------------
    def session_put(self, record: SessionRecord) -> None: ...
    def session_delete(self, client_id: str) -> None:
        """The session and its subscriptions, queue and incoming packet ids."""

    def subscription_put(self, entry: SubscriptionEntry) -> None: ...
    def subscription_delete(self, client_id: str, topic_filter: str) -> None: ...

    # -- outgoing (broker -> client) --------------------------------------------
    def outgoing_enqueue(self, client_id: str, record: QueueRecord) -> None:
        """Store the message (once) and this session's reference to it."""

    def outgoing_update(
        self, client_id: str, message_id: str, status: DeliveryStatus, packet_id: int
    ) -> None: ...
    def outgoing_delete(self, client_id: str, message_id: str) -> None: ...

    # -- incoming QoS 2 (client -> broker) ----------------------------------------
    def incoming_put(self, client_id: str, packet_id: int) -> None: ...
    def incoming_delete(self, client_id: str, packet_id: int) -> None: ...

    # -- retained messages --------------------------------------------------------
    def retained_put(self, message: Message) -> None: ...
    def retained_delete(self, topic: str) -> None: ...

    # -- delivery receipts ----------------------------------------------------------
    def receipt_step(self, status: DeliveryStatus, out: Delivery) -> None:
        """``out`` reached ``status`` just now: insert or replace its recipient's receipt.

        The receipt is ``Receipt.of(status, out)``.  A back-end may build it when it writes it,
        from the times ``out`` holds then (each is set once, before its step), and may skip it
        when a later step of ``out`` was recorded since (:func:`overtaken`): so a delivery sent
        and acknowledged within one write costs one receipt row, and the event loop builds none.
        Steps are written in the order of :class:`DeliveryStatus`, a delivery's last step last.
        """

    async def receipts(self, message_id: str) -> list[Receipt]:
        """Every recipient's receipt for one message (includes writes not yet committed)."""

    def receipts_purge(self, before: float) -> None:
        """Forget every receipt last written before ``before`` (wall-clock seconds).

        Message ids are ULIDs (``ids.new_message_id``) and a receipt changes only after its
        message was created, so a back-end may look for candidates among the ids below
        ``ids.first_message_id(before)`` (the SQLite store does, instead of keeping an index
        by time that every receipt update would have to move).
        """
