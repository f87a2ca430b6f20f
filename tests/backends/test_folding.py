"""A batch folded into what a back-end writes: net effect per queue entry, messages by holder."""

from __future__ import annotations

from zanzara.backends.batch import Op
from zanzara.backends.folding import Delete, Put, fold
from zanzara.backends.holders import Holders
from zanzara.session import OutState
from zanzara.storage import QueueRecord

from .contract import msg


def enqueue(cid: str, n: int) -> Op:
    return ("enqueue", cid, QueueRecord(message=msg(n), qos=1, retain=False), n)


def test_an_entry_added_and_removed_in_one_batch_is_not_written() -> None:
    holders = Holders()
    holders.hold("m0009", "c")  # enqueued in an earlier batch
    folded = fold(
        [
            enqueue("a", 1),
            enqueue("b", 1),
            ("update", "a", "m0001", OutState.WAIT_PUBACK, 5),
            ("dequeue", "a", "m0001"),
            ("dequeue", "c", "m0009"),  # must be written
            ("update", "b", "m0001", OutState.WAIT_PUBACK, 6),
        ],
        holders,
    )
    assert list(folded.queues["a"]) == []
    put = folded.queues["b"]["m0001"]
    assert isinstance(put, Put) and (put.state, put.packet_id) == (OutState.WAIT_PUBACK, 6)
    assert isinstance(folded.queues["c"]["m0009"], Delete)
    assert list(folded.new_messages) == ["m0001"]  # still held by b
    assert folded.freed_messages == {"m0009"}


def test_a_message_acknowledged_by_its_only_holder_within_the_batch_is_never_written() -> None:
    folded = fold([enqueue("a", 1), ("dequeue", "a", "m0001")], Holders())
    assert folded.new_messages == {} and folded.freed_messages == set()
    assert folded.queues == {"a": {}}


def test_a_session_delete_between_keeps_the_delete() -> None:
    holders = Holders()
    holders.hold("m0002", "a")  # stored before this batch
    folded = fold([enqueue("a", 1), ("session_delete", "a"), ("dequeue", "a", "m0001")], holders)
    # The put before the session_delete is gone with it; what the client held is deleted by key.
    [(kind, cid, held)] = folded.ordered
    assert (kind, cid, sorted(held)) == ("session_delete", "a", ["m0001", "m0002"])
    assert isinstance(folded.queues["a"]["m0001"], Delete)
    assert folded.freed_messages == {"m0002"} and folded.new_messages == {}


def test_updates_fold_into_the_last_state_and_none_after_a_delete() -> None:
    holders = Holders()
    holders.hold("m0001", "a")
    holders.hold("m0002", "a")
    folded = fold(
        [
            ("update", "a", "m0001", OutState.WAIT_PUBREC, 3),
            ("update", "a", "m0001", OutState.WAIT_PUBCOMP, 3),
            ("dequeue", "a", "m0002"),
            ("update", "a", "m0002", OutState.WAIT_PUBACK, 4),
            ("incoming_put", "a", 9),
        ],
        holders,
    )
    # An entry's last update is kept as that operation.
    assert folded.queues["a"]["m0001"] == ("update", "a", "m0001", OutState.WAIT_PUBCOMP, 3)
    assert isinstance(folded.queues["a"]["m0002"], Delete)
    assert folded.ordered == [("incoming_put", "a", 9)]
