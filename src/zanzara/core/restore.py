"""Starting from what the store held: sessions, subscriptions, queues, wills and timers.

:func:`restore` runs once, before any listener opens.  Its steps: the
sessions with their quotas, their subscriptions, their queued and inflight
messages (a quota lowered since the last run drops the excess now), the
incoming QoS 2 packet ids, the retained messages that have not expired; then
wills due (published at once or delayed by what is left of their delay) and
session expiry timers counted from when each client went away.
"""

from __future__ import annotations

import logging

from ..session import NEVER_EXPIRES, DeliveryStatus, Session
from ..storage import Snapshot, Store
from . import deliveries, lifecycle, routing
from .state import CoreState

__all__ = ["purge_receipts", "restore"]

logger = logging.getLogger(__name__)

# Receipts are purged every tenth of their retention, at most this many seconds apart.
MAX_PURGE_PERIOD = 3600.0


def restore(state: CoreState, store: Store, snapshot: Snapshot) -> None:
    """Use ``store`` from now on, starting from what it held (before listeners open)."""
    state.store = store
    state.track_deliveries = state.push.track_deliveries
    if state.track_deliveries:
        purge_receipts(state)
    now = state.clock()
    _sessions(state, snapshot)
    _subscriptions(state, snapshot)
    _queues(state, snapshot)
    _incoming(state, snapshot)
    _retained(state, snapshot, now)
    routing.invalidate(state)
    _wills(state, snapshot, now)
    _expiry(state, snapshot, now)
    logger.info(
        "restored %d sessions, %d messages queued or in flight, %d retained messages from the %s store",
        len(snapshot.sessions),
        sum(len(records) for records in snapshot.queues.values()),
        len(snapshot.retained),
        store.name,
        extra={"event": "restored"},
    )


def _sessions(state: CoreState, snapshot: Snapshot) -> None:
    for rec in snapshot.sessions:
        session = Session(client_id=rec.client_id, expiry_interval=rec.expiry_interval)
        lifecycle.set_quota(state, session, rec.max_queued, rec.max_queued_bytes)
        state.sessions[rec.client_id] = session


def _subscriptions(state: CoreState, snapshot: Snapshot) -> None:
    for entry in snapshot.subscriptions:
        owner = state.sessions.get(entry.client_id)
        if owner is not None:
            owner.subscriptions[entry.topic_filter] = entry
            state.subscriptions.add(entry)


def _queues(state: CoreState, snapshot: Snapshot) -> None:
    for cid, records in snapshot.queues.items():
        owner = state.sessions.get(cid)
        if owner is None:
            continue
        for qrec in records:
            out = qrec.delivery(cid)
            if qrec.status is DeliveryStatus.QUEUED:
                # A quota lowered since the last run drops (and unstores) the excess now.
                for lost, why in owner.enqueue(out):
                    deliveries.dropped(state, owner, lost, why)
            else:
                owner.inflight[qrec.packet_id] = out


def _incoming(state: CoreState, snapshot: Snapshot) -> None:
    for cid, packet_ids in snapshot.incoming.items():
        owner = state.sessions.get(cid)
        if owner is not None:
            owner.incoming_qos2.update(packet_ids)


def _retained(state: CoreState, snapshot: Snapshot, now: float) -> None:
    for message in snapshot.retained:
        if not message.expired(now):
            state.retained.set(message.topic, message)


def _wills(state: CoreState, snapshot: Snapshot, now: float) -> None:
    """Wills due: published now, or delayed by what is left of their delay."""
    for rec in snapshot.sessions:
        session = state.sessions[rec.client_id]
        # A client still connected when the broker stopped lost its connection then: now.
        session.disconnected_at = rec.disconnected_at if rec.disconnected_at is not None else now
        if rec.will is not None:
            elapsed = now - session.disconnected_at
            delayed = lifecycle.schedule_will(state, rec.client_id, rec.will, session, elapsed)
            lifecycle.persist(state, session, rec.will if delayed else None)
        elif rec.disconnected_at is None:
            lifecycle.persist(state, session)


def _expiry(state: CoreState, snapshot: Snapshot, now: float) -> None:
    """Session expiry counted from when each client went away."""
    for rec in snapshot.sessions:
        if rec.expiry_interval == NEVER_EXPIRES:
            continue
        away = now - (rec.disconnected_at if rec.disconnected_at is not None else now)
        remaining = rec.expiry_interval - away
        if remaining <= 0:
            lifecycle.expire_session(state, rec.client_id)
        else:
            lifecycle.schedule_expiry(state, rec.client_id, remaining)


def purge_receipts(state: CoreState) -> None:
    """Forget receipts older than receipt_retention; runs every tenth of it (at most hourly)."""
    store = state.store
    if store is None:
        return
    retention = state.push.receipt_retention
    store.receipts_purge(state.clock() - retention)
    state.purge_timer = state.scheduler.call_later(
        min(retention / 10, MAX_PURGE_PERIOD), purge_receipts, state
    )
