"""Delivery receipts gathered before they are written (shared by the durable back-ends).

A delivery is usually queued, sent and acknowledged within milliseconds; writing
each step would triple the store's write load for a record nobody reads until
later.  So a step is only noted here (which delivery, which step: a list
append), and handed to the writer :data:`RECEIPT_DELAY` to twice that later,
or at once when someone asks for receipts or the store closes.  The writer
builds each receipt from the delivery's :class:`~zanzara.session.Delivery`
and skips the steps a later one overtook (``storage.overtaken``), so a
delivery acknowledged within RECEIPT_DELAY of being sent is one row, and for
the SQLite store the event loop builds no receipt at all.  Receipts ride with
a batch but never gate a commit: an acknowledgement needs the message durable,
not its receipt.
"""

from __future__ import annotations

import asyncio

from ..session import Delivery
from ..storage import DeliveryStatus
from .batch import BatchWriter
from .ops import RECEIPT_STEPS

__all__ = ["RECEIPT_DELAY", "ReceiptBuffer", "Steps"]

RECEIPT_DELAY = 0.2  # seconds a step waits at least (and at most twice) before it is written

# The deliveries that reached each status, in the order they did; the dict's order is
# DeliveryStatus's, the order to write them in (a delivery's later steps last).
Steps = dict[DeliveryStatus, list[Delivery]]


def _no_steps() -> Steps:
    return {status: [] for status in DeliveryStatus}


class ReceiptBuffer:
    """Steps wait RECEIPT_DELAY to RECEIPT_DELAY x 2 before they are taken (unless a reader is
    waiting), in two generations: a delivery's later steps have that long to overtake its
    earlier ones, so most deliveries are written once, at their last step."""

    def __init__(self, writer: BatchWriter) -> None:
        self._writer = writer
        self._steps = _no_steps()  # noted since the last rotation
        self._older = _no_steps()  # noted before it: taken at the next one
        self._pending = False
        self._rotated_at = 0.0
        self._due = False
        self._timer = False

    def step(self, status: DeliveryStatus, out: Delivery) -> None:
        if not self._pending:
            self._pending = True
            self._writer.add_lazy(RECEIPT_STEPS)  # wakes the writer; the op itself is a marker
        self._steps[status].append(out)

    def due(self) -> None:
        """Write everything pending with the next batch (a reader or shutdown is waiting)."""
        self._due = True
        if self._pending:
            self._writer.add_lazy(RECEIPT_STEPS)

    def take(self) -> Steps | None:
        """Steps to write with the batch starting now (None while they may still coalesce)."""
        if not self._pending:
            return None
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._due:
            taken = self._older
            for status, outs in self._steps.items():
                taken[status] += outs
            self._older, self._steps = _no_steps(), _no_steps()
            self._pending = self._due = False
            return taken
        if now - self._rotated_at < RECEIPT_DELAY:
            if not self._timer:
                self._timer = True
                loop.call_at(self._rotated_at + RECEIPT_DELAY, self._later)
            return None
        taken, self._older, self._steps = self._older, self._steps, _no_steps()
        self._rotated_at = now
        self._pending = any(self._older.values())
        if self._pending and not self._timer:
            self._timer = True
            loop.call_at(now + RECEIPT_DELAY, self._later)
        return taken if any(taken.values()) else None

    def give_back(self, taken: Steps | None) -> None:
        """A batch failed: keep its steps for the retry, before the ones noted since."""
        if taken is None:
            return
        for status, outs in taken.items():
            if outs:
                self._older[status][:0] = outs
                self._pending = True

    def _later(self) -> None:
        self._timer = False
        if self._pending:
            self._writer.add_lazy(RECEIPT_STEPS)  # the older generation is ripe: wake the writer
