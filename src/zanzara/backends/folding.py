"""A batch of store operations folded into what the back-end must write.

Shared by the durable back-ends so that each writes a batch with few statements
(SQLite: one ``executemany`` per kind; Redis: one command per key and kind):

* queue operations (``Delivery*``) become one net effect per (client,
  message): put, update or delete; an entry put and deleted within the batch
  is not written at all.  Entries of different keys are independent, and a
  ``SessionDelete`` drops what came before it for that client, so the effects
  can be written after every other operation, grouped as the back-end likes;
* messages are written when their first holder appears and deleted when their
  last one goes (:class:`~.holders.Holders`); a message let go and held again
  within the batch is neither;
* every other operation is kept, in order, in :attr:`Folded.ordered`, a
  ``SessionDelete`` as a :class:`FoldedSessionDelete`.

Folding updates the holders, so a batch is folded once and its translation
kept for retries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..message import Message
from ..session import DeliveryStatus
from ..storage import QueueRecord
from .holders import Holders
from .ops import (
    IncomingDelete,
    IncomingPut,
    Op,
    OutgoingDelete,
    OutgoingEnqueue,
    OutgoingUpdate,
    ReceiptsPurge,
    ReceiptSteps,
    RetainedDelete,
    RetainedPut,
    SessionDelete,
    SessionPut,
    SubscriptionDelete,
    SubscriptionPut,
)

__all__ = ["DELETE", "Delete", "Effect", "Folded", "FoldedSessionDelete", "Ordered", "Put", "fold"]


@dataclass(slots=True)
class Put:
    """An entry added to a client's queue within the batch: the back-end writes it whole."""

    record: QueueRecord
    seq: int
    status: DeliveryStatus  # the record's, or a later update's
    packet_id: int
    # (An entry's last update in the batch is kept as that OutgoingUpdate itself:
    # folding allocates nothing for it.)


class Delete:
    """An entry removed from a client's queue within the batch; one instance, :data:`DELETE`."""

    __slots__ = ()


DELETE = Delete()

Effect = Put | OutgoingUpdate | Delete


@dataclass(frozen=True, slots=True)
class FoldedSessionDelete:
    """A SessionDelete with the ids of the messages its stored queue held, so that a back-end
    can delete the queue by key, without an index by client."""

    client_id: str
    held: list[str]


# What folding keeps in order: every operation but the queue's, a session's delete as folded.
Ordered = (
    SessionPut
    | FoldedSessionDelete
    | SubscriptionPut
    | SubscriptionDelete
    | IncomingPut
    | IncomingDelete
    | RetainedPut
    | RetainedDelete
    | ReceiptsPurge
    | ReceiptSteps
)


@dataclass(slots=True)
class Folded:
    """What :func:`fold` makes of a batch: the back-end writes ``ordered`` in order, then the
    queues' effects and the messages held and let go, grouped as it likes."""

    ordered: list[Ordered] = field(default_factory=list)
    queues: dict[str, dict[str, Effect]] = field(default_factory=dict)  # client -> message -> effect
    new_messages: dict[str, Message] = field(default_factory=dict)
    freed_messages: set[str] = field(default_factory=set)

    def _hold(self, message: Message, first: bool) -> None:
        if first:
            mid: str = message.message_id  # type: ignore[assignment]  # queued messages have ids
            if mid in self.freed_messages:
                self.freed_messages.discard(mid)  # let go and held again: still stored
            else:
                self.new_messages[mid] = message

    def _free(self, message_id: str | None) -> None:
        if message_id is not None and self.new_messages.pop(message_id, None) is None:
            self.freed_messages.add(message_id)

    def _enqueue(self, op: OutgoingEnqueue, holders: Holders) -> None:
        rec = op.record
        message = rec.message
        mid: str = message.message_id  # type: ignore[assignment]  # queued messages have ids
        cid = op.client_id
        self._hold(message, holders.hold(mid, cid))
        entries = self.queues.get(cid)
        if entries is None:
            entries = self.queues[cid] = {}
        entries[mid] = Put(rec, op.seq, rec.status, rec.packet_id)

    def _session_delete(self, cid: str, holders: Holders) -> None:
        # A delete drops what came before it for that client: its queue's effects go, and what
        # its stored queue held is deleted by key.
        self.queues.pop(cid, None)
        held, freed = holders.release_client(cid)
        for mid in freed:
            self._free(mid)
        self.ordered.append(FoldedSessionDelete(cid, held))

    def _retained_put(self, op: RetainedPut, holders: Holders) -> None:
        msg = op.message
        mid: str = msg.message_id  # type: ignore[assignment]  # retained messages have ids
        first, replaced = holders.retain(msg.topic, mid)
        self._hold(msg, first)
        self._free(replaced)
        self.ordered.append(op)

    def _retained_delete(self, op: RetainedDelete, holders: Holders) -> None:
        self._free(holders.unretain(op.topic))
        self.ordered.append(op)


def fold(ops: list[Op], holders: Holders) -> Folded:
    # The branches come in the order of how often they run: a delivery to a connected
    # persistent session is an update (sent) and a delete (acknowledged), so those two stay
    # inline.  ``type(op) is`` rather than ``match``: a class pattern costs 60 ns more an op.
    out = Folded()
    queues = out.queues
    release = holders.release
    for op in ops:
        if type(op) is OutgoingDelete:
            cid, mid = op.client_id, op.message_id
            entries = queues.get(cid)
            if entries is None:
                entries = queues[cid] = {}
            if type(entries.get(mid)) is Put:
                # Added and removed within the batch (an online subscriber acknowledged it
                # before the batch was written): it was delivered, nothing of it is written.
                del entries[mid]
            else:
                entries[mid] = DELETE
            if release(mid, cid):
                out._free(mid)
        elif type(op) is OutgoingUpdate:
            cid, mid = op.client_id, op.message_id
            entries = queues.get(cid)
            if entries is None:
                queues[cid] = {mid: op}
                continue
            effect = entries.get(mid)
            if effect is None or type(effect) is OutgoingUpdate:
                entries[mid] = op
            elif type(effect) is Put:
                effect.status, effect.packet_id = op.status, op.packet_id
            # after a delete there is nothing to update
        elif type(op) is OutgoingEnqueue:
            out._enqueue(op, holders)
        elif type(op) is SessionDelete:
            out._session_delete(op.client_id, holders)
        elif type(op) is RetainedPut:
            out._retained_put(op, holders)
        elif type(op) is RetainedDelete:
            out._retained_delete(op, holders)
        else:
            out.ordered.append(op)
    return out
