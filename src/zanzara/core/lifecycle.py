"""A session's life after its connection: DISCONNECT, wills, will delay, session expiry.

The steps when a connection ends (:func:`disconnected`): forget the live
client; a session that ends with its connection ends now and its will is
published; a persistent one is kept (stored with a delayed will, so a restart
still publishes it) and its expiry timer set.  Timers come from
``state.scheduler`` (Mosquitto's ``will_delay.c`` and ``session_expiry.c``).
"""

from __future__ import annotations

import logging

from ..errors import ProtocolViolation
from ..events import ClientDisconnected, DisconnectReason
from ..mqtt.enums import ReasonCode
from ..mqtt.packets import Disconnect, Will
from ..mqtt.properties import EMPTY_PROPERTIES
from ..session import NEVER_EXPIRES, Session
from ..storage import SessionRecord
from . import deliveries, routing, sys_topics
from .client import Client
from .push_rules import make_message
from .state import CoreState, TimerHandle

__all__ = [
    "cancel_timer",
    "disconnected",
    "end_session",
    "expire_session",
    "handle_disconnect",
    "persist",
    "schedule_expiry",
    "schedule_will",
    "set_quota",
]


logger = logging.getLogger(__name__)

# How each DisconnectReason reads in the log.
_REASONS = {
    DisconnectReason.DISCONNECT: "sent DISCONNECT",
    DisconnectReason.TAKEOVER: "taken over by a new connection with its client id",
    DisconnectReason.KEEPALIVE: "keep alive timeout",
    DisconnectReason.PROTOCOL_ERROR: "protocol error",
    DisconnectReason.CONNECTION_LOST: "connection lost",
    DisconnectReason.SHUTDOWN: "server shutting down",
    DisconnectReason.NOT_AUTHORIZED: "re-authentication failed",
    DisconnectReason.WRITE_TIMEOUT: "took nothing we wrote for write_timeout",
    DisconnectReason.STORE_FAILURE: "an acknowledgement could not be made durable",
}


def handle_disconnect(state: CoreState, client: Client, packet: Disconnect) -> None:
    """The client's DISCONNECT: a last session expiry, and whether the will goes."""
    expiry = packet.properties.session_expiry_interval
    if expiry is not None:
        if client.session.expiry_interval == 0 and expiry != 0:
            # [MQTT-3.14.2-2] a session that ends with the connection cannot be extended.
            raise ProtocolViolation("session expiry set on DISCONNECT after 0 in CONNECT")
        client.session.expiry_interval = expiry
    if packet.reason_code != ReasonCode.DISCONNECT_WITH_WILL_MESSAGE:
        client.will = None  # [MQTT-3.1.2-10] a normal DISCONNECT discards the will
    client.disconnect_reason = DisconnectReason.DISCONNECT
    client.link.close()


def disconnected(state: CoreState, client: Client) -> None:
    """The connection of ``client`` is gone (any reason). Idempotent."""
    cid = client.info.client_id
    if state.clients.get(cid) is not client:
        return
    del state.clients[cid]
    session = client.session
    will = client.will
    client.will = None
    if session.expiry_interval == 0:
        end_session(state, session, with_will=False)
        if will is not None:
            publish_will(state, cid, will)
    else:
        session.disconnected_at = state.clock()
        delayed = will is not None and schedule_will(state, cid, will, session)
        # A delayed will is stored with the session, so a restart still publishes it.
        persist(state, session, will if delayed else None)
        if session.expiry_interval != NEVER_EXPIRES:
            schedule_expiry(state, cid, session.expiry_interval)
    if state.events.active:
        state.events.emit(ClientDisconnected(client=client.info, reason=client.disconnect_reason))
    reason = client.disconnect_reason
    logger.info(
        "%s disconnected: %s%s",
        cid,
        _REASONS.get(reason, reason),
        "" if session.expiry_interval else ", session ended",
        extra={"client_id": cid, "event": "disconnected", "reason": str(reason)},
    )
    if state.presence_node is not None:
        sys_topics.presence(
            state, state.presence_node, client.info, "disconnected", reason=str(client.disconnect_reason)
        )


def schedule_expiry(state: CoreState, cid: str, delay: float) -> None:
    """End the session of ``cid`` after ``delay`` seconds unless it reconnects [MQTT-4.1.0-2]."""
    state.expiry_timers[cid] = state.scheduler.call_later(delay, expire_session, state, cid)


def schedule_will(state: CoreState, cid: str, will: Will, session: Session, elapsed: float = 0.0) -> bool:
    """Publish ``will`` now, or after its delay (less ``elapsed``); True if it waits."""
    delay = (will.properties.will_delay_interval or 0) - elapsed
    if delay <= 0:
        publish_will(state, cid, will)
        return False
    # [MQTT-3.1.3-9] published after the delay or when the session ends, whichever first.
    handle = state.scheduler.call_later(min(delay, session.expiry_interval), _delayed_will, state, cid, will)
    state.will_timers[cid] = (handle, will)
    return True


def _delayed_will(state: CoreState, cid: str, will: Will) -> None:
    state.will_timers.pop(cid, None)
    publish_will(state, cid, will)
    session = state.sessions.get(cid)
    if session is not None:
        persist(state, session)  # the will is gone


def publish_will(state: CoreState, cid: str, will: Will) -> None:
    props = will.properties
    if props is not EMPTY_PROPERTIES:
        props = props.without("will_delay_interval")
    message = make_message(state, will.topic, will.payload, will.qos, will.retain, props, cid)
    routing.route(state, message)


def expire_session(state: CoreState, cid: str) -> None:
    state.expiry_timers.pop(cid, None)
    session = state.sessions.get(cid)
    if session is not None and cid not in state.clients:
        state.stats.sessions_expired += 1
        end_session(state, session, with_will=True)


def end_session(state: CoreState, session: Session, *, with_will: bool) -> None:
    """Forget ``session``: its subscriptions, what it held, its stored copy, its pending will."""
    cid = session.client_id
    for topic_filter in list(session.subscriptions):
        state.subscriptions.remove(cid, topic_filter)
    pending = session.reset()
    deliveries.discard(state, pending, "session ended")
    state.sessions.pop(cid, None)
    if state.store is not None and session.stored:
        state.store.session_delete(cid)
    pending_will = state.will_timers.pop(cid, None)
    if pending_will is not None:
        pending_will[0].cancel()
        if with_will:
            publish_will(state, cid, pending_will[1])


def cancel_timer(timers: dict[str, TimerHandle], cid: str) -> None:
    timer = timers.pop(cid, None)
    if timer is not None:
        timer.cancel()


def persist(state: CoreState, session: Session, will: Will | None = None) -> None:
    """Store ``session`` (with a will still to come) if it outlives its connection."""
    store = state.persisted(session)
    if store is not None:
        session.stored = True
        store.session_put(
            SessionRecord(
                client_id=session.client_id,
                expiry_interval=session.expiry_interval,
                disconnected_at=session.disconnected_at,
                will=will,
                max_queued=session.quota_messages,
                max_queued_bytes=session.quota_bytes,
            )
        )


def set_quota(state: CoreState, session: Session, messages: int | None, size: int | None) -> None:
    """The session's queue quota: a per-device one where given, else the configured one."""
    cfg = state.config
    session.quota_messages, session.quota_bytes = messages, size
    session.max_queued = cfg.max_queued_messages if messages is None else messages
    session.max_queued_bytes = cfg.max_queued_bytes if size is None else size
