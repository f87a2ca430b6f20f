"""What an operator's tools ask of the core: views of sessions, queues and retained messages, and
the actions behind them (kick, end a session, server-side subscribe, purge a queue).

The admin HTTP API and the embedded :class:`~zanzara.Broker` both call these; neither reaches into
the core's state.  Views are frozen snapshots built when asked (nothing is kept up to date on the
hot path for them), and every action goes through the same steps as its MQTT counterpart: a kick
is a disconnect with reason 0x98 Administrative action, a server-side subscription is stored and
gets the retained messages as a SUBSCRIBE would.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidArgument, ProtocolError
from ..events import DisconnectReason
from ..mqtt.enums import ReasonCode
from ..mqtt.topics import parse_shared, validate_topic_filter
from ..session import Delivery, Session
from ..topic_tree import SubscriptionEntry
from . import deliveries, lifecycle
from .client import Client, Traffic
from .state import CoreState

__all__ = [
    "QueuedView",
    "SessionView",
    "SubscriptionView",
    "end_session",
    "kick",
    "list_sessions",
    "list_subscriptions",
    "purge_queue",
    "queue_of",
    "session_view",
    "subscribe",
    "unsubscribe",
]

_NO_TRAFFIC = Traffic()


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionView:
    """One subscription of one session."""

    client_id: str
    topic_filter: str
    qos: int
    no_local: bool
    retain_as_published: bool
    subscription_id: int | None
    share_group: str | None

    @classmethod
    def of(cls, entry: SubscriptionEntry) -> SubscriptionView:
        return cls(
            client_id=entry.client_id,
            topic_filter=entry.topic_filter,
            qos=entry.qos,
            no_local=entry.no_local,
            retain_as_published=entry.retain_as_published,
            subscription_id=entry.subscription_id,
            share_group=entry.share_group,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionView:
    """A session and, while it is connected, its client (times are wall-clock seconds)."""

    client_id: str
    connected: bool
    # Of the live connection; None while offline.
    username: str | None
    address: str | None
    listener: str | None
    protocol_version: int | None
    keep_alive: int | None
    clean_start: bool | None
    connected_at: float | None
    # Of the session.
    session_expiry_interval: int
    disconnected_at: float | None
    subscriptions: tuple[SubscriptionView, ...]
    queued_messages: int
    queued_bytes: int
    inflight: int
    max_inflight: int
    max_queued_messages: int  # 0: unlimited
    max_queued_bytes: int  # 0: unlimited
    # Of the live connection (zero while offline).
    traffic: Traffic
    messages_dropped: int


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuedView:
    """One message waiting in (or in flight from) a session's queue."""

    message_id: str | None
    topic: str
    qos: int
    priority: int
    payload_size: int
    status: str
    queued_at: float
    expires_at: float | None
    collapse_key: str | None


def session_view(state: CoreState, session: Session) -> SessionView:
    """A snapshot of ``session`` (and its client, when connected)."""
    client = state.clients.get(session.client_id)
    info = client.info if client is not None else None
    return SessionView(
        client_id=session.client_id,
        connected=client is not None,
        username=info.username if info is not None else None,
        address=info.address if info is not None else None,
        listener=info.listener if info is not None else None,
        protocol_version=int(client.version) if client is not None else None,
        keep_alive=client.keep_alive if client is not None else None,
        clean_start=client.clean_start if client is not None else None,
        connected_at=client.connected_at if client is not None else None,
        session_expiry_interval=session.expiry_interval,
        disconnected_at=session.disconnected_at,
        subscriptions=tuple(SubscriptionView.of(e) for e in session.subscriptions.values()),
        queued_messages=session.queued,
        queued_bytes=session.queued_bytes,
        inflight=len(session.inflight),
        max_inflight=session.max_inflight,
        max_queued_messages=session.max_queued,
        max_queued_bytes=session.max_queued_bytes,
        traffic=client.link.traffic if client is not None else _NO_TRAFFIC,
        messages_dropped=client.messages_dropped if client is not None else 0,
    )


def list_sessions(
    state: CoreState,
    *,
    prefix: str = "",
    username: str | None = None,
    connected: bool | None = None,
    listener: str | None = None,
    after: str | None = None,
    limit: int = 100,
) -> tuple[list[SessionView], str | None]:
    """Sessions by client id, ``limit`` at a time after the client id ``after``; and the cursor
    of the next page (None: this was the last).  ``username`` and ``listener`` match connected
    clients only (an offline session has neither)."""
    clients = state.clients
    ids = sorted(cid for cid in state.sessions if cid.startswith(prefix) and (after is None or cid > after))
    page: list[SessionView] = []
    for cid in ids:
        client = clients.get(cid)
        if connected is not None and (client is not None) is not connected:
            continue
        if username is not None and (client is None or client.info.username != username):
            continue
        if listener is not None and (client is None or client.info.listener != listener):
            continue
        if len(page) == limit:
            return page, page[-1].client_id
        page.append(session_view(state, state.sessions[cid]))
    return page, None


def list_subscriptions(
    state: CoreState, *, topic_filter: str | None = None, client_id: str | None = None
) -> list[SubscriptionView]:
    """Every subscription (shared ones with their group), optionally of one filter or client."""
    if client_id is not None:
        session = state.sessions.get(client_id)
        sessions = [session] if session is not None else []
    else:
        sessions = [state.sessions[cid] for cid in sorted(state.sessions)]
    found = []
    for session in sessions:
        if topic_filter is not None:
            entry = session.subscriptions.get(topic_filter)
            if entry is not None:
                found.append(SubscriptionView.of(entry))
            continue
        found.extend(SubscriptionView.of(e) for e in session.subscriptions.values())
    return found


def queue_of(state: CoreState, client_id: str) -> list[QueuedView] | None:
    """What ``client_id``'s session holds: in flight first (send order), then queued (delivery
    order); None without such a session."""
    session = state.sessions.get(client_id)
    if session is None:
        return None
    return [_queued_view(out) for out in (*session.inflight.values(), *session.iter_queue())]


def _queued_view(out: Delivery) -> QueuedView:
    message = out.message
    return QueuedView(
        message_id=message.message_id,
        topic=message.topic,
        qos=out.qos,
        priority=message.priority,
        payload_size=len(message.payload),
        status=out.status.value,
        queued_at=out.queued_at,
        expires_at=message.expires_at,
        collapse_key=message.collapse_key,
    )


def purge_queue(state: CoreState, client_id: str) -> int | None:
    """Drop what waits in ``client_id``'s queue (not what is in flight); how many; None without
    such a session.  Each is unstored, counted and noted on its receipt as "purged"."""
    session = state.sessions.get(client_id)
    if session is None:
        return None
    purged = session.clear_queue()
    for out in purged:
        deliveries.dropped(state, session, out, "purged")
    return len(purged)


def kick(state: CoreState, client_id: str, *, with_will: bool = True) -> bool:
    """Disconnect ``client_id`` (v5: DISCONNECT 0x98 Administrative action); its session stays as
    its expiry says.  ``with_will=False`` discards the will.  False if it is not connected."""
    client = state.clients.get(client_id)
    if client is None:
        return False
    _kick(client, with_will=with_will)
    return True


def _kick(client: Client, *, with_will: bool) -> None:
    if not with_will:
        client.will = None
    client.disconnect_reason = DisconnectReason.KICKED
    client.link.disconnect(ReasonCode.ADMINISTRATIVE_ACTION)


def end_session(state: CoreState, client_id: str, *, with_will: bool = False) -> bool:
    """End ``client_id``'s session now: kick its client, drop its queue and subscriptions, forget
    it in the store.  False if there is no such session."""
    session = state.sessions.get(client_id)
    if session is None:
        return False
    client = state.clients.get(client_id)
    if client is not None:
        _kick(client, with_will=with_will)
        # The connection's end comes later; the session must not outlive this call.
        lifecycle.disconnected(state, client)
    lifecycle.cancel_timer(state.expiry_timers, client_id)
    current = state.sessions.get(client_id)
    if current is not None:
        lifecycle.end_session(state, current, with_will=with_will)
    return True


def subscribe(
    state: CoreState,
    client_id: str,
    topic_filter: str,
    *,
    qos: int = 0,
    no_local: bool = False,
    retain_as_published: bool = False,
    send_retained: bool = True,
) -> bool:
    """Subscribe ``client_id``'s session to ``topic_filter`` from the server side (as EMQX's API
    does); a connected client gets the retained messages as after a SUBSCRIBE.  False without
    such a session.  Raises :class:`InvalidArgument` for a filter no client could subscribe to."""
    cfg = state.config
    try:
        validate_topic_filter(topic_filter, max_levels=cfg.max_topic_levels, max_length=cfg.max_topic_length)
    except ProtocolError as exc:
        raise InvalidArgument(f"topic filter {topic_filter!r}: {exc}") from None
    if qos not in (0, 1, 2):
        raise InvalidArgument(f"qos must be 0, 1 or 2, not {qos!r}")
    group, _ = parse_shared(topic_filter)
    if group is not None and no_local:
        raise InvalidArgument("no_local cannot be set on a shared subscription [MQTT-3.8.3-4]")
    session = state.sessions.get(client_id)
    if session is None:
        return False
    entry = SubscriptionEntry(
        client_id=client_id,
        topic_filter=topic_filter,
        qos=min(qos, cfg.max_qos),
        no_local=no_local,
        retain_as_published=retain_as_published,
        share_group=group,
    )
    state.subscriptions.add(entry)
    session.subscriptions[topic_filter] = entry
    store = state.persisted(session)
    if store is not None:
        store.subscription_put(entry)
    client = state.clients.get(client_id)
    if client is not None and send_retained and group is None:
        deliveries.send_retained(state, client, topic_filter, entry.qos, None)
    return True


def unsubscribe(state: CoreState, client_id: str, topic_filter: str) -> bool:
    """Remove one subscription of ``client_id``'s session; False if it had none."""
    session = state.sessions.get(client_id)
    if session is None or topic_filter not in session.subscriptions:
        return False
    state.subscriptions.remove(client_id, topic_filter)
    del session.subscriptions[topic_filter]
    store = state.persisted(session)
    if store is not None:
        store.subscription_delete(client_id, topic_filter)
    return True
