"""The store's write operations, as the group commit's batch holds them.

One class per write method of the Store (``storage.py``), named after it:
``store.outgoing_delete(cid, mid)`` adds ``OutgoingDelete(cid, mid)`` to the
batch (``batched.py``, ``batch.py``), and each durable back-end turns a batch
into its writes with ``match op:`` (``sqlite.py``, ``redis.py``), after
``folding.py`` has folded the queue operations into net effects.

:data:`Op` is their union, so a translator that misses one fails the type
check.  ``ReceiptSteps`` is the one operation without a Store method of its
own: a marker that receipt steps (``receipts.py``) ride with the batch.

The operations are data: this module imports nothing that does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

from ..message import Message
from ..session import DeliveryStatus
from ..storage import QueueRecord, SessionRecord
from ..topic_tree import SubscriptionEntry

__all__ = [
    "RECEIPT_STEPS",
    "IncomingDelete",
    "IncomingPut",
    "Op",
    "OutgoingDelete",
    "OutgoingEnqueue",
    "OutgoingUpdate",
    "ReceiptSteps",
    "ReceiptsPurge",
    "RetainedDelete",
    "RetainedPut",
    "SessionDelete",
    "SessionPut",
    "SubscriptionDelete",
    "SubscriptionPut",
]

# Positional fields (no kw_only): a batch is built on the hot path, and a call with keywords
# costs more than one without.  Final, so that ``type(op) is OutgoingUpdate`` (which
# folding.py tests instead of ``match``: half the cost) narrows the union in both branches.


@dataclass(frozen=True, slots=True)
@final
class SessionPut:
    """The session's record, inserted or replaced (not its subscriptions or queue)."""

    record: SessionRecord


@dataclass(frozen=True, slots=True)
@final
class SessionDelete:
    """The session and everything it owns: subscriptions, queue, incoming packet ids."""

    client_id: str


@dataclass(frozen=True, slots=True)
@final
class SubscriptionPut:
    """One subscription of a session, inserted or replaced (a client id and a filter are its key)."""

    entry: SubscriptionEntry


@dataclass(frozen=True, slots=True)
@final
class SubscriptionDelete:
    """One subscription of a session gone (UNSUBSCRIBE)."""

    client_id: str
    topic_filter: str


# The three queue operations run once or twice per persistent delivery.  They are slotted but
# not frozen: a frozen dataclass sets each field through object.__setattr__, which makes its
# construction three times as expensive (0.5 us instead of 0.15 us); nothing mutates them.


@dataclass(slots=True)
@final
class OutgoingEnqueue:
    """A message put on a session's queue: the message is stored once, the entry refers to it."""

    client_id: str
    record: QueueRecord
    seq: int  # enqueue order across sessions, which a restart keeps


@dataclass(slots=True)
@final
class OutgoingUpdate:
    """A queue entry's new status and packet id (sent, released), so that a restart resumes
    its flow where it stood."""

    client_id: str
    message_id: str
    status: DeliveryStatus
    packet_id: int


@dataclass(slots=True)
@final
class OutgoingDelete:
    """A queue entry gone (acknowledged, expired or dropped); the message goes with its last holder."""

    client_id: str
    message_id: str


@dataclass(frozen=True, slots=True)
@final
class IncomingPut:
    """A QoS 2 packet id received and not yet released (PUBREL)."""

    client_id: str
    packet_id: int


@dataclass(frozen=True, slots=True)
@final
class IncomingDelete:
    """A QoS 2 packet id released (PUBREL received): the client may use it again."""

    client_id: str
    packet_id: int


@dataclass(frozen=True, slots=True)
@final
class RetainedPut:
    """The retained message of its topic, replacing the one before it."""

    message: Message


@dataclass(frozen=True, slots=True)
@final
class RetainedDelete:
    """The retained message of ``topic`` cleared by an empty retained PUBLISH."""

    topic: str


@dataclass(frozen=True, slots=True)
@final
class ReceiptsPurge:
    """The write of :meth:`~zanzara.storage.Store.receipts_purge`: receipts past their retention go."""

    before: float  # receipts last updated before this wall-clock time go


@dataclass(frozen=True, slots=True)
@final
class ReceiptSteps:
    """Receipt steps are pending: a marker that wakes the writer (the steps ride with the batch)."""


RECEIPT_STEPS = ReceiptSteps()

Op = (
    SessionPut
    | SessionDelete
    | SubscriptionPut
    | SubscriptionDelete
    | OutgoingEnqueue
    | OutgoingUpdate
    | OutgoingDelete
    | IncomingPut
    | IncomingDelete
    | RetainedPut
    | RetainedDelete
    | ReceiptsPurge
    | ReceiptSteps
)
