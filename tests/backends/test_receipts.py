"""Receipt steps wait in two generations, so that a delivery is mostly written once, at its last step."""

from __future__ import annotations

import asyncio

from zanzara.backends.batch import BatchWriter
from zanzara.backends.ops import Op
from zanzara.backends.receipts import RECEIPT_DELAY, ReceiptBuffer
from zanzara.session import Delivery
from zanzara.storage import DeliveryStatus, overtaken

from .contract import msg

SENT, ACKNOWLEDGED = DeliveryStatus.SENT, DeliveryStatus.ACKNOWLEDGED


async def _write(ops: list[Op]) -> None:
    raise AssertionError("the writer is not started in these tests")


def delivery(cid: str) -> Delivery:
    return Delivery(message=msg(1), qos=1, retain=False, client_id=cid, queued_at=1.0, sent_at=2.0)


async def test_a_step_waits_at_least_the_delay_so_a_later_step_can_overtake_it() -> None:
    buffer = ReceiptBuffer(BatchWriter("test", _write))
    out = delivery("a")
    buffer.step(SENT, out)
    assert buffer.take() is None  # just noted: it waits for the next generation
    out.acknowledged_at = 3.0
    buffer.step(ACKNOWLEDGED, out)
    assert buffer.take() is None  # still within the delay
    await asyncio.sleep(RECEIPT_DELAY * 1.1)
    taken = buffer.take()
    assert taken is not None and taken[SENT] == [out] and taken[ACKNOWLEDGED] == []
    assert overtaken(SENT, out)  # so the writer skips it: one row, written at the next rotation
    assert buffer.take() is None
    await asyncio.sleep(RECEIPT_DELAY * 1.1)
    taken = buffer.take()
    assert taken is not None and taken[ACKNOWLEDGED] == [out]
    assert buffer.take() is None  # nothing left


async def test_a_reader_gets_every_step_at_once_and_a_failed_batch_is_retried_first() -> None:
    buffer = ReceiptBuffer(BatchWriter("test", _write))
    first, second = delivery("a"), delivery("b")
    buffer.step(SENT, first)
    assert buffer.take() is None
    buffer.step(SENT, second)
    buffer.due()  # someone reads receipts: both generations go with the next batch
    taken = buffer.take()
    assert taken is not None and taken[SENT] == [first, second]
    third = delivery("c")
    buffer.step(SENT, third)
    buffer.give_back(taken)  # that batch failed: its steps come before the newer one
    buffer.due()
    again = buffer.take()
    assert again is not None and again[SENT] == [first, second, third]
