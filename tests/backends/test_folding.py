"""A batch folded into what a back-end writes: net effect per queue entry, messages by holder."""

from __future__ import annotations

from zanzara.backends.folding import Delete, FoldedSessionDelete, Put, fold
from zanzara.backends.holders import Holders
from zanzara.backends.ops import IncomingPut, OutgoingDelete, OutgoingEnqueue, OutgoingUpdate, SessionDelete
from zanzara.session import DeliveryStatus
from zanzara.storage import QueueRecord

from .contract import msg


def enqueue(cid: str, n: int) -> OutgoingEnqueue:
    return OutgoingEnqueue(cid, QueueRecord(message=msg(n), qos=1, retain=False), n)


def test_an_entry_added_and_removed_in_one_batch_is_not_written() -> None:
    holders = Holders()
    holders.hold("m0009", "c")  # enqueued in an earlier batch
    folded = fold(
        [
            enqueue("a", 1),
            enqueue("b", 1),
            OutgoingUpdate("a", "m0001", DeliveryStatus.SENT, 5),
            OutgoingDelete("a", "m0001"),
            OutgoingDelete("c", "m0009"),  # must be written
            OutgoingUpdate("b", "m0001", DeliveryStatus.SENT, 6),
        ],
        holders,
    )
    assert list(folded.queues["a"]) == []
    put = folded.queues["b"]["m0001"]
    assert isinstance(put, Put) and (put.status, put.packet_id) == (DeliveryStatus.SENT, 6)
    assert isinstance(folded.queues["c"]["m0009"], Delete)
    assert list(folded.new_messages) == ["m0001"]  # still held by b
    assert folded.freed_messages == {"m0009"}


def test_a_message_acknowledged_by_its_only_holder_within_the_batch_is_never_written() -> None:
    folded = fold([enqueue("a", 1), OutgoingDelete("a", "m0001")], Holders())
    assert folded.new_messages == {} and folded.freed_messages == set()
    assert folded.queues == {"a": {}}


def test_a_session_delete_between_keeps_the_delete() -> None:
    holders = Holders()
    holders.hold("m0002", "a")  # stored before this batch
    folded = fold([enqueue("a", 1), SessionDelete("a"), OutgoingDelete("a", "m0001")], holders)
    # The put before the SessionDelete is gone with it; what the client held is deleted by key.
    [deleted] = folded.ordered
    assert isinstance(deleted, FoldedSessionDelete)
    assert (deleted.client_id, sorted(deleted.held)) == ("a", ["m0001", "m0002"])
    assert isinstance(folded.queues["a"]["m0001"], Delete)
    assert folded.freed_messages == {"m0002"} and folded.new_messages == {}


def test_updates_fold_into_the_last_state_and_none_after_a_delete() -> None:
    holders = Holders()
    holders.hold("m0001", "a")
    holders.hold("m0002", "a")
    folded = fold(
        [
            OutgoingUpdate("a", "m0001", DeliveryStatus.SENT, 3),
            OutgoingUpdate("a", "m0001", DeliveryStatus.RELEASED, 3),
            OutgoingDelete("a", "m0002"),
            OutgoingUpdate("a", "m0002", DeliveryStatus.SENT, 4),
            IncomingPut("a", 9),
        ],
        holders,
    )
    # An entry's last update is kept as that operation.
    assert folded.queues["a"]["m0001"] == OutgoingUpdate("a", "m0001", DeliveryStatus.RELEASED, 3)
    assert isinstance(folded.queues["a"]["m0002"], Delete)
    assert folded.ordered == [IncomingPut("a", 9)]
