"""Session state that survives reconnects (section 4.1).

A :class:`Session` holds a client's subscriptions, its outgoing messages
(inflight, waiting for an acknowledgement, and the queue behind them), the
packet ids it has in use and the incoming QoS 2 packet ids it has received
but not yet released.  It decides order and admission; it never does I/O.

Queue order: highest priority first, publish order within one priority.
Overflow policy (``max_queued`` messages, ``max_queued_bytes`` of payload):
drop the lowest priority first, then the oldest within it; a message larger
than ``max_queued_bytes`` alone is dropped at once, costing no other entry.
A queued entry whose message carries a collapse key is replaced by a newer
one with the same key.  Dropped entries are returned with the reason, for
counting and receipts.
Pure: no asyncio, no clock (``now`` is passed in).
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from .message import Message
from .topic_tree import SubscriptionEntry

__all__ = ["Delivery", "DeliveryStatus", "Session"]

NEVER_EXPIRES = 0xFFFFFFFF  # section 3.1.2.11.2: the session expiry interval meaning "does not expire"


class DeliveryStatus(StrEnum):
    """Where one message stands for one recipient, from queued to its end, in the order of the steps.

    One enum for a delivery's whole life: a :class:`Delivery` under way is
    QUEUED, SENT or RELEASED (what a restart resumes from); a receipt
    (``storage.Receipt``) is QUEUED, SENT, ACKNOWLEDGED, EXPIRED or DROPPED.
    RELEASED is the second half of the QoS 2 flow, which a receipt shows as
    SENT until the PUBCOMP.  A str: stores write it as it is.
    """

    QUEUED = "queued"  # waiting in the session's queue (offline, or behind a full window)
    SENT = "sent"  # PUBLISH written, waiting for its PUBACK (QoS 1) or PUBREC (QoS 2)
    RELEASED = "released"  # QoS 2: PUBREC received and PUBREL sent, waiting for the PUBCOMP
    ACKNOWLEDGED = "acknowledged"  # PUBACK (QoS 1) or PUBCOMP (QoS 2) received
    EXPIRED = "expired"  # its message expiry passed before delivery
    DROPPED = "dropped"  # removed by a quota, a collapse key, a session end, ... (see reason)

    @classmethod
    def _missing_(cls, value: object) -> DeliveryStatus | None:
        # Queue rows written before 2026-12 name the packet awaited (zanzara 0.x stores).
        return _LEGACY_STATES.get(value) if isinstance(value, str) else None


_LEGACY_STATES = {
    "wait_puback": DeliveryStatus.SENT,
    "wait_pubrec": DeliveryStatus.SENT,
    "wait_pubcomp": DeliveryStatus.RELEASED,
}


@dataclass(slots=True, eq=False, kw_only=True)
class Delivery:
    """One message on its way to one session (queued or inflight)."""

    message: Message
    qos: int
    retain: bool
    subscription_ids: tuple[int, ...] = ()
    packet_id: int = 0
    status: DeliveryStatus = DeliveryStatus.QUEUED
    # The delivery receipt (storage.Receipt) is built from what follows, when it is written:
    # the recipient, the wall-clock time of each step, and why it expired, was dropped or refused.
    client_id: str
    queued_at: float = 0.0
    sent_at: float | None = None
    acknowledged_at: float | None = None
    finished_at: float | None = None
    reason: str | None = None


@dataclass(slots=True, eq=False)
class Session:
    """One client's session, connected or not, kept by the core in ``sessions`` by client id.

    The queue rules are the module docstring's.  Only the core mutates it; what of it a store
    keeps is a ``storage.SessionRecord``, its subscriptions and its queue's records.
    """

    client_id: str
    # Seconds the session outlives its connection; 0: ends with it (section 3.1.2.11.2).
    expiry_interval: int = 0
    max_inflight: int = 100
    max_queued: int = 1000  # 0: unlimited
    max_queued_bytes: int = 0  # 0: unlimited
    # When its last connection ended (broker clock); None while connected.
    disconnected_at: float | None = None
    # Written to the store at some point (so its end must be, too).
    stored: bool = False
    # The authentication hook's per-device quota (None: the configured one), kept with the session.
    quota_messages: int | None = None
    quota_bytes: int | None = None
    subscriptions: dict[str, SubscriptionEntry] = field(default_factory=dict)
    inflight: dict[int, Delivery] = field(default_factory=dict)
    # Incoming QoS 2 packet ids received (PUBREC sent), not yet released by PUBREL.
    incoming_qos2: set[int] = field(default_factory=set)
    _next_packet_id: int = 0
    _buckets: dict[int, deque[Delivery]] = field(default_factory=dict)
    _priorities: list[int] = field(default_factory=list)  # ascending, only non-empty buckets
    _queued: int = 0
    _queued_bytes: int = 0
    _collapse: dict[str, Delivery] = field(default_factory=dict)

    # -- packet ids -------------------------------------------------------------

    def next_packet_id(self) -> int:
        """A packet id not in use by any inflight message [MQTT-2.2.1-3]."""
        if len(self.inflight) >= 65535:
            raise RuntimeError("no free packet identifier")
        pid = self._next_packet_id
        inflight = self.inflight
        while True:
            pid = pid + 1 if pid < 65535 else 1
            if pid not in inflight:
                self._next_packet_id = pid
                return pid

    # -- the queue --------------------------------------------------------------

    @property
    def queued(self) -> int:
        return self._queued

    @property
    def queued_bytes(self) -> int:
        """Payload bytes waiting in the queue (what ``max_queued_bytes`` counts)."""
        return self._queued_bytes

    def window_open(self) -> bool:
        return len(self.inflight) < self.max_inflight

    def enqueue(self, out: Delivery) -> list[tuple[Delivery, str]]:
        """Queue ``out``; return what was dropped (maybe ``out`` itself) and why."""
        message = out.message
        max_bytes = self.max_queued_bytes
        if max_bytes and len(message.payload) > max_bytes:
            # It could never fit: dropping others for it would lose them for nothing.
            return [(out, "queue full")]
        dropped: list[tuple[Delivery, str]] = []
        key = message.collapse_key
        if key is not None:
            old = self._collapse.get(key)
            if old is not None:
                self._remove(old)
                dropped.append((old, "collapsed"))
            self._collapse[key] = out
        prio = message.priority
        bucket = self._buckets.get(prio)
        if bucket is None:
            bucket = self._buckets[prio] = deque()
            bisect.insort(self._priorities, prio)
        bucket.append(out)
        self._queued += 1
        self._queued_bytes += len(message.payload)
        max_n = self.max_queued
        while (max_n and self._queued > max_n) or (max_bytes and self._queued_bytes > max_bytes):
            dropped.append((self._drop_lowest(), "queue full"))
        return dropped

    def _drop_lowest(self) -> Delivery:
        victim = self._buckets[self._priorities[0]][0]
        self._remove(victim)
        return victim

    def _remove(self, out: Delivery) -> None:
        prio = out.message.priority
        bucket = self._buckets[prio]
        if bucket[0] is out:
            bucket.popleft()
        else:
            bucket.remove(out)  # a collapsed entry in the middle: rare, O(n)
        self._forget(out)
        if not bucket:
            del self._buckets[prio]
            self._priorities.remove(prio)

    def _forget(self, out: Delivery) -> None:
        self._queued -= 1
        self._queued_bytes -= len(out.message.payload)
        key = out.message.collapse_key
        if key is not None and self._collapse.get(key) is out:
            del self._collapse[key]

    def dequeue(self) -> Delivery | None:
        """The next message to send: highest priority, oldest first."""
        if not self._queued:
            return None
        highest = self._priorities[-1]
        bucket = self._buckets[highest]
        out = bucket.popleft()
        self._forget(out)
        if not bucket:
            del self._buckets[highest]
            self._priorities.pop()
        return out

    def iter_queue(self) -> Iterator[Delivery]:
        """Queued entries in delivery order (for inspection and persistence)."""
        for prio in reversed(self._priorities):
            yield from self._buckets[prio]

    def clear_queue(self) -> list[Delivery]:
        dropped = list(self.iter_queue())
        self._buckets.clear()
        self._priorities.clear()
        self._collapse.clear()
        self._queued = 0
        self._queued_bytes = 0
        return dropped

    # -- inflight ---------------------------------------------------------------

    def start_flight(self, out: Delivery) -> int:
        """Give ``out`` a packet id and put it in flight; returns the packet id."""
        pid = self.next_packet_id()
        out.packet_id = pid
        out.status = DeliveryStatus.SENT
        self.inflight[pid] = out
        return pid

    def acknowledge(self, packet_id: int, qos: int, status: DeliveryStatus) -> Delivery | None:
        """Complete the flight of ``packet_id`` if it is a QoS ``qos`` delivery in ``status``;
        None if not (the PUBACK of a QoS 1 message is (1, SENT), a PUBCOMP (2, RELEASED))."""
        out = self.inflight.get(packet_id)
        if out is None or out.status is not status or out.qos != qos:
            return None
        del self.inflight[packet_id]
        return out

    def received_pubrec(self, packet_id: int) -> Delivery | None:
        """QoS 2 step 2: the message is now owned by the receiver (section 4.3.3)."""
        out = self.inflight.get(packet_id)
        if out is None or out.status is not DeliveryStatus.SENT or out.qos != 2:
            return None
        out.status = DeliveryStatus.RELEASED
        return out

    def reset(self) -> list[Delivery]:
        """Forget everything (clean start); return what was pending, for reporting."""
        pending = list(self.inflight.values()) + self.clear_queue()
        self.inflight.clear()
        self.incoming_qos2.clear()
        self.subscriptions.clear()
        return pending
