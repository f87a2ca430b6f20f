"""Delivery receipts coalesced before they are written (shared by the durable back-ends).

A delivery is usually queued, sent and acknowledged within milliseconds; writing
each step would triple the store's write load for a record nobody reads until
later.  Receipts are kept here, newest state per (message, recipient), and
handed to the writer at most every :data:`RECEIPT_DELAY` seconds, or at once
when someone asks for receipts or the store closes.  They ride with a batch
but never gate a commit: an acknowledgement needs the message durable, not
its receipt.
"""

from __future__ import annotations

import asyncio

from ..storage import Receipt
from .batch import BatchWriter

__all__ = ["RECEIPT_DELAY", "ReceiptBuffer"]

RECEIPT_DELAY = 0.2  # seconds a receipt may wait to be coalesced before it is written

Key = tuple[str, str]


class ReceiptBuffer:
    def __init__(self, writer: BatchWriter) -> None:
        self._writer = writer
        self._pending: dict[Key, Receipt] = {}
        self._taken_at = 0.0
        self._due = False
        self._timer = False

    def put(self, receipt: Receipt) -> None:
        if not self._pending:
            self._writer.add_lazy(("receipts",))  # wakes the writer; the op itself is a marker
        self._pending[(receipt.message_id, receipt.client_id)] = receipt

    def __bool__(self) -> bool:
        return bool(self._pending)

    def due(self) -> None:
        """Write everything pending with the next batch (a reader or shutdown is waiting)."""
        self._due = True
        if self._pending:
            self._writer.add_lazy(("receipts",))

    def take(self) -> dict[Key, Receipt]:
        """Receipts to write with the batch starting now (empty while they may still coalesce)."""
        if not self._pending:
            return {}
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._due or now - self._taken_at >= RECEIPT_DELAY:
            taken, self._pending = self._pending, {}
            self._taken_at = now
            self._due = False
            return taken
        if not self._timer:
            self._timer = True
            loop.call_later(RECEIPT_DELAY, self._later)
        return {}

    def give_back(self, taken: dict[Key, Receipt]) -> None:
        """A batch failed: keep its receipts for the retry, newer updates winning."""
        taken.update(self._pending)
        self._pending = taken

    def _later(self) -> None:
        self._timer = False
        self.due()
