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

from ..session import NEVER_EXPIRES, Outgoing, OutState, Session
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
    sessions = state.sessions
    for rec in snapshot.sessions:
        session = Session(client_id=rec.client_id, expiry_interval=rec.expiry_interval)
        lifecycle.set_quota(state, session, rec.max_queued, rec.max_queued_bytes)
        sessions[rec.client_id] = session
    for entry in snapshot.subscriptions:
        owner = sessions.get(entry.client_id)
        if owner is not None:
            owner.subscriptions[entry.topic_filter] = entry
            state.subscriptions.add(entry)
    for cid, records in snapshot.queues.items():
        owner = sessions.get(cid)
        if owner is None:
            continue
        for qrec in records:
            out = Outgoing(
                message=qrec.message,
                qos=qrec.qos,
                retain=qrec.retain,
                subscription_ids=qrec.subscription_ids,
                packet_id=qrec.packet_id,
                state=qrec.state,
                client_id=cid,
            )
            if qrec.state is OutState.QUEUED:
                # A quota lowered since the last run drops (and unstores) the excess now.
                for lost, why in owner.enqueue(out):
                    deliveries.dropped(state, owner, lost, why)
            else:
                owner.inflight[qrec.packet_id] = out
    for cid, packet_ids in snapshot.incoming.items():
        owner = sessions.get(cid)
        if owner is not None:
            owner.incoming_qos2.update(packet_ids)
    for message in snapshot.retained:
        if not message.expired(now):
            state.retained.set(message.topic, message)
    routing.invalidate(state)
    for rec in snapshot.sessions:
        session = sessions[rec.client_id]
        # A client still connected when the broker stopped lost its connection then: now.
        session.disconnected_at = rec.disconnected_at if rec.disconnected_at is not None else now
        if rec.will is not None:
            elapsed = now - session.disconnected_at
            delayed = lifecycle.schedule_will(state, rec.client_id, rec.will, session, elapsed)
            lifecycle.persist(state, session, rec.will if delayed else None)
        elif rec.disconnected_at is None:
            lifecycle.persist(state, session)
    for rec in snapshot.sessions:
        if rec.expiry_interval == NEVER_EXPIRES:
            continue
        away = now - (rec.disconnected_at if rec.disconnected_at is not None else now)
        remaining = rec.expiry_interval - away
        if remaining <= 0:
            lifecycle.expire_session(state, rec.client_id)
        else:
            lifecycle.schedule_expiry(state, rec.client_id, remaining)
    logger.info(
        "restored %d sessions, %d retained messages from the %s store",
        len(snapshot.sessions),
        len(snapshot.retained),
        store.name,
    )


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
