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

__all__ = ["DELETE", "Delete", "Effect", "Folded", "Put", "fold"]


@dataclass(slots=True)
class Put:
    record: QueueRecord
    seq: int
    state: OutState  # the record's, or a later update's
    packet_id: int
    # (An entry's last update in the batch is kept as that operation itself,
    # ("update", cid, mid, state, packet_id): folding allocates nothing for it.)


class Delete:
    __slots__ = ()


DELETE = Delete()

Effect = Put | Op | Delete  # an Op here is an "update"


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
    # The branches come in the order of how often they run: a delivery to a connected
    # persistent session is an update (sent) and a dequeue (acknowledged).
    out = Folded()
    queues = out.queues
    release = holders.release
    for op in ops:
        kind = op[0]
        if kind == "dequeue":
            _, cid, mid = op
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
        elif kind == "update":
            cid, mid = op[1], op[2]
            entries = queues.get(cid)
            if entries is None:
                queues[cid] = {mid: op}
                continue
            effect = entries.get(mid)
            if effect is None or type(effect) is tuple:
                entries[mid] = op
            elif type(effect) is Put:
                effect.state, effect.packet_id = op[3], op[4]
            # after a delete there is nothing to update
        elif kind == "enqueue":
            _, cid, rec, seq = op
            mid = rec.message.message_id
            out._hold(rec.message, holders.hold(mid, cid))
            entries = queues.get(cid)
            if entries is None:
                entries = queues[cid] = {}
            entries[mid] = Put(rec, seq, rec.state, rec.packet_id)
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
