"""Deliveries: how and when a message reaches one session, and how its flow ends.

A delivery (:class:`~zanzara.session.Delivery`) goes in flight at once when
its client is connected, its window open, its queue empty and its socket not
congested; else it waits in the session queue (priority order, bounded, see
``session.py``).  :func:`pump` moves queued deliveries into flight as the
window opens or the socket drains.  Every end of a delivery is recorded here:
acknowledged (:func:`completed`), expired, dropped or discarded with its
session, each unstored, counted and noted on its receipt.
"""

from __future__ import annotations

import logging

from ..events import Delivered, Dropped
from ..message import Message
from ..mqtt.packets import PubRel
from ..protocol import PublishEncoder
from ..session import Delivery, Session
from ..storage import DeliveryStatus, QueueRecord
from .client import Client
from .state import CoreState, Stats

__all__ = [
    "completed",
    "deliver",
    "discard",
    "dropped",
    "forget",
    "pump",
    "resend_inflight",
    "send_qos0",
    "send_retained",
]

logger = logging.getLogger(__name__)


def send_qos0(
    state: CoreState, client: Client, encoder: PublishEncoder, retain: bool, sub_ids: tuple[int, ...]
) -> bool:
    """A QoS 0 message to a connected client: sent now (True), or dropped if its socket is
    congested or the message too large for it."""
    link = client.link
    if link.congested:
        _drop_for_slowness(state, client, encoder.message)
        return False
    if link.send_publish(encoder, 0, retain, sub_ids):
        state.stats.messages_sent += 1
        if state.events.active:
            state.events.emit(Delivered(client_id=client.info.client_id, message=encoder.message, qos=0))
        return True
    return False


def _drop_for_slowness(state: CoreState, client: Client, message: Message) -> None:
    """A QoS 0 message its subscriber's full socket cannot take: what it cannot take is its loss."""
    client.messages_dropped += 1
    _count_drops(state.stats, "slow subscriber")
    if state.events.active:
        cid = client.info.client_id
        state.events.emit(Dropped(client_id=cid, message=message, reason="slow subscriber"))


def deliver(
    state: CoreState,
    client_id: str,
    client: Client | None,
    encoder: PublishEncoder,
    qos: int,
    retain: bool,
    sub_ids: tuple[int, ...],
) -> bool:
    """A QoS 1/2 message to a session: in flight now if it can go (True), else queued."""
    session = client.session if client is not None else state.sessions.get(client_id)
    if session is None:
        return False
    now = encoder.now
    out = Delivery(
        message=encoder.message,
        qos=qos,
        retain=retain,
        subscription_ids=sub_ids,
        client_id=session.client_id,
        queued_at=now,
    )
    # state.persisted(session), inlined: this runs once per QoS 1/2 delivery.
    store = state.store if session.expiry_interval else None
    if (
        client is not None
        and not session.queued
        and len(session.inflight) < session.max_inflight
        and not client.link.congested
    ):
        pid = session.start_flight(out)
        out.sent_at = now
        if store is not None:
            store.outgoing_enqueue(session.client_id, QueueRecord.of(out))
        if state.track_deliveries:
            _note(state, DeliveryStatus.SENT, out)
        _sent(state, client, out, client.link.send_publish(encoder, qos, retain, sub_ids, pid))
        return True
    if store is not None:
        store.outgoing_enqueue(session.client_id, QueueRecord.of(out))
    if state.track_deliveries:
        _note(state, DeliveryStatus.QUEUED, out)
    for lost, why in session.enqueue(out):
        dropped(state, session, lost, why)
    return False


def _sent(state: CoreState, client: Client, out: Delivery, sent: bool) -> None:
    """``out`` went in flight: counted if it was sent, dropped if it could not be."""
    if sent:
        state.stats.messages_sent += 1
        return
    # [MQTT-3.1.2-25] too large for this client: discarded as if delivered.
    client.session.inflight.pop(out.packet_id, None)
    dropped(state, client.session, out, "larger than the client's maximum packet size")


def forget(state: CoreState, session: Session, out: Delivery) -> None:
    """``out`` left the session (acknowledged, expired or dropped): unstore it."""
    store = state.persisted(session)
    if store is not None and out.message.message_id:
        store.outgoing_delete(session.client_id, out.message.message_id)


def dropped(state: CoreState, session: Session, out: Delivery, why: str) -> None:
    """``out`` will never be delivered: unstore it, count it, note its receipt, tell listeners."""
    forget(state, session, out)
    _count_drops(state.stats, why)
    if state.track_deliveries:
        _finish(state, out, DeliveryStatus.DROPPED, state.clock(), why)
    if state.events.active:
        state.events.emit(Dropped(client_id=session.client_id, message=out.message, reason=why))
    logger.debug("dropped a message on %s for %s: %s", out.message.topic, session.client_id, why)


def _count_drops(stats: Stats, why: str, n: int = 1) -> None:
    drops = stats.drops
    drops[why] = drops.get(why, 0) + n


def discard(state: CoreState, pending: list[Delivery], why: str) -> None:
    """Report what a session held when it ended (it is not stored any more)."""
    if pending:
        _count_drops(state.stats, why, len(pending))
    if state.track_deliveries:
        now = state.clock()
        for out in pending:
            _finish(state, out, DeliveryStatus.DROPPED, now, why)


def _note(state: CoreState, status: DeliveryStatus, out: Delivery) -> None:
    """Note a delivery step for its receipt (the store builds it from ``out``'s fields)."""
    store = state.store
    if store is not None and out.message.message_id is not None:
        store.receipt_step(status, out)


def _finish(state: CoreState, out: Delivery, status: DeliveryStatus, now: float, reason: str) -> None:
    out.finished_at = now
    out.reason = reason
    _note(state, status, out)


def pump(state: CoreState, client: Client) -> None:
    """Move queued messages into flight while the client's window allows."""
    session = client.session
    if not session.queued:
        return
    now = state.clock()
    # Looked up once per pump, not per message: a reconnect drains up to a window at once.
    store = state.store
    step = store.receipt_step if store is not None and state.track_deliveries else None
    persist = state.persisted(session)
    cid = session.client_id
    link = client.link
    inflight = session.inflight
    while len(inflight) < session.max_inflight and not link.congested:
        out = session.dequeue()
        if out is None:
            return
        message = out.message
        mid = message.message_id
        if message.expires_at is not None and message.expired(now):
            # [MQTT-3.3.2-5] an expired message is not delivered.
            state.stats.messages_expired += 1
            forget(state, session, out)
            if state.track_deliveries:
                _finish(state, out, DeliveryStatus.EXPIRED, now, "message expiry")
            continue
        pid = session.start_flight(out)
        out.sent_at = now
        if mid is not None:
            if step is not None:
                step(DeliveryStatus.SENT, out)
            if persist is not None:
                persist.outgoing_update(cid, mid, out.status, pid)
        _sent(
            state,
            client,
            out,
            link.send_message(message, out.qos, out.retain, out.subscription_ids, pid, now),
        )


def resend_inflight(state: CoreState, client: Client) -> None:
    """[MQTT-4.4.0-1] on a resumed session resend unacknowledged PUBLISH (DUP) and PUBREL."""
    now = state.clock()
    link = client.link
    for pid, out in list(client.session.inflight.items()):
        if out.status is DeliveryStatus.RELEASED:
            link.send(PubRel(packet_id=pid))
        else:
            sent = link.send_message(
                out.message, out.qos, out.retain, out.subscription_ids, pid, now, dup=True
            )
            _sent(state, client, out, sent)


def completed(state: CoreState, client: Client, outs: list[Delivery]) -> None:
    """These deliveries were acknowledged (PUBACK, PUBCOMP): unstore them, note their receipts."""
    session = client.session
    store = state.store
    persist = state.persisted(session)
    step = store.receipt_step if store is not None and state.track_deliveries else None
    now = state.clock() if step is not None else 0.0
    state.stats.deliveries_acknowledged += len(outs)
    cid = session.client_id
    for out in outs:
        mid = out.message.message_id
        if mid is not None:
            if persist is not None:
                persist.outgoing_delete(cid, mid)
            if step is not None:
                out.acknowledged_at = now
                step(DeliveryStatus.ACKNOWLEDGED, out)
    if state.events.active:
        for out in outs:
            state.events.emit(Delivered(client_id=client.info.client_id, message=out.message, qos=out.qos))


def send_retained(
    state: CoreState, client: Client, topic_filter: str, granted: int, sub_id: int | None
) -> None:
    """[MQTT-3.3.1-9] retained messages go out with RETAIN set, at most the granted QoS."""
    now = state.clock()
    sub_ids = (sub_id,) if sub_id else ()
    expired = []
    may_receive = state.may_receive
    cid = client.info.client_id
    for topic, message in state.retained.match(topic_filter):
        if message.expired(now):
            expired.append(topic)
            continue
        if may_receive is not None and not may_receive(cid, topic):
            continue
        qos = min(message.qos, granted)
        encoder = PublishEncoder(message, now)
        if qos == 0:
            send_qos0(state, client, encoder, True, sub_ids)
        else:
            deliver(state, cid, client, encoder, qos, True, sub_ids)
    for topic in expired:
        state.retained.delete(topic)
