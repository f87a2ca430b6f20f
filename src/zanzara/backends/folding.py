"""A batch of store operations folded into what the back-end must write.

Shared by the durable back-ends so that each writes a batch with few statements
(SQLite: one ``executemany`` per kind; Redis: one command per key and kind):

* queue operations become one net effect per (client, message): put, update or
  delete; an entry put and deleted within the batch is not written at all.
  Entries of different keys are independent, and a ``session_delete`` drops
  what came before it for that client, so the effects can be written after
  every other operation, grouped as the back-end likes;
* messages are written when their first holder appears and deleted when their
  last one goes (:class:`~.holders.Holders`); a message let go and held again
  within the batch is neither;
* every other operation is kept, in order, in :attr:`Folded.ordered`.

Folding updates the holders, so a batch is folded once and its translation
kept for retries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..message import Message
from ..session import OutState
from ..storage import QueueRecord
from .batch import Op
from .holders import Holders

__all__ = ["Delete", "Folded", "Put", "Update", "fold"]


@dataclass(slots=True)
class Put:
    record: QueueRecord
    seq: int
    state: OutState  # the record's, or a later update's
    packet_id: int


@dataclass(slots=True)
class Update:
    state: OutState
    packet_id: int


class Delete:
    __slots__ = ()


_DELETE = Delete()

Effect = Put | Update | Delete


@dataclass(slots=True)
class Folded:
    ordered: list[Op] = field(default_factory=list)
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


def fold(ops: list[Op], holders: Holders) -> Folded:
    out = Folded()
    queues = out.queues
    for op in ops:
        kind = op[0]
        if kind == "enqueue":
            _, cid, rec, seq = op
            mid = rec.message.message_id
            out._hold(rec.message, holders.hold(mid, cid))
            queues.setdefault(cid, {})[mid] = Put(rec, seq, rec.state, rec.packet_id)
        elif kind == "update":
            _, cid, mid, state, packet_id = op
            entries = queues.setdefault(cid, {})
            effect = entries.get(mid)
            if isinstance(effect, Put):
                effect.state, effect.packet_id = state, packet_id
            elif not isinstance(effect, Delete):  # after a delete there is nothing to update
                entries[mid] = Update(state, packet_id)
        elif kind == "dequeue":
            _, cid, mid = op
            entries = queues.setdefault(cid, {})
            if isinstance(entries.get(mid), Put):
                # Added and removed within the batch (an online subscriber acknowledged it
                # before the batch was written): it was delivered, nothing of it is written.
                del entries[mid]
            else:
                entries[mid] = _DELETE
            if holders.release(mid, cid):
                out._free(mid)
        elif kind == "session_delete":
            # Becomes ("session_delete", cid, ids of the messages its stored queue held), so a
            # back-end can delete the queue by key, without an index by client.
            cid = op[1]
            queues.pop(cid, None)
            held, freed = holders.release_client(cid)
            for mid in freed:
                out._free(mid)
            out.ordered.append(("session_delete", cid, held))
        elif kind == "retained_put":
            msg = op[1]
            first, replaced = holders.retain(msg.topic, msg.message_id)
            out._hold(msg, first)
            out._free(replaced)
            out.ordered.append(op)
        elif kind == "retained_delete":
            out._free(holders.unretain(op[1]))
            out.ordered.append(op)
        else:
            out.ordered.append(op)
    return out
