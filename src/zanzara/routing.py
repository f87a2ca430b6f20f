"""Routing: from a message to every session that should get it.

:class:`Router` holds the subscription and retained trees, turns a topic into
a cached delivery plan (one target per client, overlapping subscriptions
merged), and moves messages into flight or into session queues.  It also
owns what follows from acknowledgements: pumping a session's queue as its
inflight window opens, and resending on reconnect.

The broker (``broker.py``) decides *whether* things happen (CONNECT,
authorization, QoS flows); the router decides *where messages go*.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .config import MqttConfig
from .events import Delivered, Dropped, EventHub, Published
from .hooks import ClientInfo
from .message import Message
from .mqtt.enums import ProtocolVersion
from .mqtt.packets import Packet, PubRel, Will
from .outbound import PublishEncoder, encode_one
from .protocol import ServerProtocol
from .session import Outgoing, OutState, Session
from .storage import DeliveryStatus, QueueRecord, Store
from .topic_tree import Matches, RetainedTree, SharedGroup, SubscriptionEntry, SubscriptionTree

__all__ = ["Client", "ClientLink", "Router", "Stats"]

logger = logging.getLogger(__name__)


class ClientLink(Protocol):
    """What the broker needs from a live connection (implemented by transports)."""

    protocol: ServerProtocol
    # The client's socket is full beyond max_write_buffer: QoS 0 to it is dropped and
    # QoS 1/2 waits in its session queue; the link pumps the queue when it drains.
    congested: bool

    @property
    def address(self) -> str | None: ...

    @property
    def listener_name(self) -> str | None: ...

    @property
    def identity_as_username(self) -> bool:
        """The username is a client certificate's Common Name the TLS handshake verified."""

    def send(self, packet: Packet) -> None: ...

    def send_bytes(self, data: bytes) -> bool: ...

    def close(self) -> None:
        """Flush what is queued, then close the connection."""

    def set_keep_alive(self, seconds: int) -> None: ...


@dataclass(slots=True, eq=False)
class Client:
    """A connected client: its connection, session and will."""

    link: ClientLink
    session: Session
    info: ClientInfo
    version: ProtocolVersion
    will: Will | None = None
    disconnect_reason: str = "connection_lost"
    # QoS 0 messages dropped because the client did not read them in time.
    messages_dropped: int = 0
    # Acknowledgements waiting for a store commit, in order: (commit, action, argument on
    # success, argument on failure or None); later ones queue behind them.
    pending_acks: deque[tuple[asyncio.Future[None], Callable[[Any], None], Any, Any]] = field(
        default_factory=deque
    )


@dataclass(slots=True)
class _Target:
    """Everything one client's matching subscriptions say about a topic."""

    client_id: str
    qos: int
    no_local: bool
    retain_as_published: bool
    subscription_ids: tuple[int, ...]
    # Set when the client has several matching subscriptions with different options.
    entries: tuple[SubscriptionEntry, ...] = ()


@dataclass(slots=True)
class _Plan:
    targets: list[_Target]
    groups: tuple[SharedGroup, ...]


@dataclass(slots=True)
class Stats:
    messages_received: int = 0
    messages_sent: int = 0
    messages_dropped: int = 0
    messages_expired: int = 0
    connections_total: int = 0
    malformed_packets: int = 0
    # QoS 0 messages dropped because their subscriber's socket was full (also in messages_dropped).
    slow_subscriber_drops: int = 0
    # Connections that sent more unacknowledged QoS 1/2 PUBLISH than receive_maximum (paused).
    receive_maximum_exceeded: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Router:
    def __init__(
        self,
        config: MqttConfig,
        sessions: dict[str, Session],
        clients: dict[str, Client],
        stats: Stats,
        events: EventHub,
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.sessions = sessions
        self.clients = clients
        self.stats = stats
        self.events = events
        self.clock = clock
        self.store: Store | None = None
        # Delivery receipts ([push] track_deliveries): needs a store to keep them in.
        self.track = False
        # (client id, topic) -> may that client read it (an ACL); checked once per topic and
        # client when a routing plan is built, so call invalidate() when its answers change.
        self.may_receive: Callable[[str, str], bool] | None = None
        self.subscriptions = SubscriptionTree()
        self.retained: RetainedTree[Message] = RetainedTree()
        # topic -> (the tree's Matches it was built from, plan). The tree returns the very
        # same Matches object until a change affects the topic, so identity says "still valid".
        self._plans: dict[str, tuple[Matches, _Plan]] = {}

    def invalidate(self) -> None:
        """Subscriptions changed: forget every cached plan."""
        self._plans.clear()

    def publish_message(self, message: Message) -> int:
        """Store if retained, then route to every matching session; returns the match count."""
        if message.retain:
            store = self.store
            if message.payload:
                self.retained.set(message.topic, message)
                if store is not None:
                    store.retained_put(message)
            else:
                # [MQTT-3.3.1-6] an empty retained message clears the topic and is not stored.
                self.retained.delete(message.topic)
                if store is not None:
                    store.retained_delete(message.topic)
        if self.events.active:
            self.events.emit(Published(client_id=message.sender, message=message))
        matches = self.subscriptions.match(message.topic)
        cached = self._plans.get(message.topic)
        plan = (
            cached[1]
            if cached is not None and cached[0] is matches
            else self._make_plan(message.topic, matches)
        )
        targets = plan.targets
        if not targets and not plan.groups:
            return 0
        now = self.clock()
        if message.expired(now):
            self.stats.messages_expired += 1
            return len(targets)
        shapes = PublishEncoder(message, now)
        clients = self.clients
        sender = message.sender
        mqos = message.qos
        mretain = message.retain
        for target in targets:
            if target.entries:
                self._deliver_overlapping(target, shapes)
                continue
            if target.no_local and target.client_id == sender:
                continue  # [MQTT-3.8.3-3]
            qos = mqos if mqos < target.qos else target.qos
            retain = mretain and target.retain_as_published  # [MQTT-3.3.1-12], [MQTT-3.3.1-13]
            client = clients.get(target.client_id)
            if qos == 0:
                if client is not None:
                    self._send_qos0(client, shapes, retain, target.subscription_ids)
                continue
            self._deliver(target.client_id, client, shapes, qos, retain, target.subscription_ids)
        may_receive = self.may_receive
        for group in plan.groups:
            entry = group.pick(clients.__contains__)
            if entry is None or (may_receive is not None and not may_receive(entry.client_id, message.topic)):
                continue
            qos = min(mqos, entry.qos)
            sub_ids = (entry.subscription_id,) if entry.subscription_id else ()
            client = clients.get(entry.client_id)
            if qos == 0:
                if client is not None:
                    self._send_qos0(client, shapes, False, sub_ids)
            else:
                self._deliver(entry.client_id, client, shapes, qos, False, sub_ids)
        return len(targets) + len(plan.groups)

    def _deliver_overlapping(self, target: _Target, shapes: PublishEncoder) -> None:
        # [MQTT-3.3.4-2] one copy at the highest QoS of the matching subscriptions;
        # [MQTT-3.3.4-3] carrying all of their subscription identifiers.
        message = shapes.message
        entries = [e for e in target.entries if not (e.no_local and e.client_id == message.sender)]
        if not entries:
            return
        qos = min(message.qos, max(e.qos for e in entries))
        retain = message.retain and any(e.retain_as_published for e in entries)
        sub_ids = tuple(sorted({e.subscription_id for e in entries if e.subscription_id}))
        client = self.clients.get(target.client_id)
        if qos == 0:
            if client is not None:
                self._send_qos0(client, shapes, retain, sub_ids)
        else:
            self._deliver(target.client_id, client, shapes, qos, retain, sub_ids)

    def _send_qos0(
        self, client: Client, shapes: PublishEncoder, retain: bool, sub_ids: tuple[int, ...]
    ) -> None:
        link = client.link
        if link.congested:
            self._drop_for_slowness(client, shapes.message)
            return
        proto = link.protocol
        if link.send_bytes(shapes.encode_for(proto, 0, retain, sub_ids)):
            self.stats.messages_sent += 1
            if self.events.active:
                self.events.emit(Delivered(client_id=client.info.client_id, message=shapes.message, qos=0))
        else:
            proto.forget_alias(shapes.message.topic)

    def _drop_for_slowness(self, client: Client, message: Message) -> None:
        """A QoS 0 message its subscriber's full socket cannot take: what it cannot take is its loss."""
        client.messages_dropped += 1
        stats = self.stats
        stats.messages_dropped += 1
        stats.slow_subscriber_drops += 1
        if self.events.active:
            cid = client.info.client_id
            self.events.emit(Dropped(client_id=cid, message=message, reason="slow subscriber"))

    def _deliver(
        self,
        client_id: str,
        client: Client | None,
        shapes: PublishEncoder,
        qos: int,
        retain: bool,
        sub_ids: tuple[int, ...],
    ) -> None:
        session = client.session if client is not None else self.sessions.get(client_id)
        if session is None:
            return
        now = shapes.now
        out = Outgoing(
            message=shapes.message,
            qos=qos,
            retain=retain,
            subscription_ids=sub_ids,
            client_id=session.client_id,
            queued_at=now,
        )
        store = self.store if session.expiry_interval else None
        if (
            client is not None
            and not session.queued
            and len(session.inflight) < session.max_inflight
            and not client.link.congested
        ):
            pid = session.start_flight(out)
            out.sent_at = now
            if store is not None:
                store.outgoing_enqueue(session.client_id, _record(out))
            if self.track:
                self._step(DeliveryStatus.SENT, out)
            self._send_flight(client, out, shapes.encode_for(client.link.protocol, qos, retain, sub_ids, pid))
            return
        if store is not None:
            store.outgoing_enqueue(session.client_id, _record(out))
        if self.track:
            self._step(DeliveryStatus.QUEUED, out)
        for dropped, why in session.enqueue(out):
            self.dropped(session, dropped, why)

    def _send_flight(self, client: Client, out: Outgoing, data: bytes) -> None:
        if client.link.send_bytes(data):
            self.stats.messages_sent += 1
            return
        # [MQTT-3.1.2-25] too large for this client: discarded as if delivered.
        client.link.protocol.forget_alias(out.message.topic)
        client.session.inflight.pop(out.packet_id, None)
        self.dropped(client.session, out, "larger than the client's maximum packet size")

    def forget(self, session: Session, out: Outgoing) -> None:
        """``out`` left the session (acknowledged, expired or dropped): unstore it."""
        if self.store is not None and session.expiry_interval and out.message.message_id:
            self.store.outgoing_delete(session.client_id, out.message.message_id)

    def dropped(self, session: Session, out: Outgoing, why: str) -> None:
        self.forget(session, out)
        self.stats.messages_dropped += 1
        if self.track:
            self._finish(out, DeliveryStatus.DROPPED, self.clock(), why)
        if self.events.active:
            self.events.emit(Dropped(client_id=session.client_id, message=out.message, reason=why))
        logger.debug("dropped a message on %s for %s: %s", out.message.topic, session.client_id, why)

    def discard(self, session: Session, pending: list[Outgoing], why: str) -> None:
        """Report what a session held when it ended (it is not stored any more)."""
        self.stats.messages_dropped += len(pending)
        if self.track:
            now = self.clock()
            for out in pending:
                self._finish(out, DeliveryStatus.DROPPED, now, why)

    def _step(self, status: DeliveryStatus, out: Outgoing) -> None:
        """Note a delivery step for its receipt (the store builds it from ``out``'s fields)."""
        store = self.store
        if store is not None and out.message.message_id is not None:
            store.receipt_step(status, out)

    def _finish(self, out: Outgoing, status: DeliveryStatus, now: float, reason: str) -> None:
        out.finished_at = now
        out.reason = reason
        self._step(status, out)

    def pump(self, client: Client) -> None:
        """Move queued messages into flight while the client's window allows."""
        session = client.session
        if not session.queued:
            return
        now = self.clock()
        # Looked up once per pump, not per message: a reconnect drains up to a window at once.
        store = self.store
        step = store.receipt_step if store is not None and self.track else None
        persist = store if session.expiry_interval else None
        cid = session.client_id
        link = client.link
        proto = link.protocol
        inflight = session.inflight
        while len(inflight) < session.max_inflight and not link.congested:
            out = session.dequeue()
            if out is None:
                return
            message = out.message
            mid = message.message_id
            if message.expires_at is not None and message.expired(now):
                # [MQTT-3.3.2-5] an expired message is not delivered.
                self.stats.messages_expired += 1
                self.forget(session, out)
                if self.track:
                    self._finish(out, DeliveryStatus.EXPIRED, now, "message expiry")
                continue
            pid = session.start_flight(out)
            out.sent_at = now
            if mid is not None:
                if step is not None:
                    step(DeliveryStatus.SENT, out)
                if persist is not None:
                    persist.outgoing_update(cid, mid, out.state, pid)
            data = encode_one(message, proto, out.qos, out.retain, out.subscription_ids, pid, now, dup=False)
            self._send_flight(client, out, data)

    def resend_inflight(self, client: Client) -> None:
        """[MQTT-4.4.0-1] on a resumed session resend unacknowledged PUBLISH (DUP) and PUBREL."""
        now = self.clock()
        proto = client.link.protocol
        for pid, out in list(client.session.inflight.items()):
            if out.state is OutState.WAIT_PUBCOMP:
                client.link.send(PubRel(packet_id=pid))
            else:
                data = encode_one(
                    out.message, proto, out.qos, out.retain, out.subscription_ids, pid, now, dup=True
                )
                self._send_flight(client, out, data)

    def completed(self, client: Client, outs: list[Outgoing]) -> None:
        """These deliveries were acknowledged (PUBACK, PUBCOMP): unstore them, note their receipts."""
        session = client.session
        store = self.store
        persist = store if session.expiry_interval else None
        step = store.receipt_step if store is not None and self.track else None
        now = self.clock() if step is not None else 0.0
        cid = session.client_id
        for out in outs:
            mid = out.message.message_id
            if mid is not None:
                if persist is not None:
                    persist.outgoing_delete(cid, mid)
                if step is not None:
                    out.acknowledged_at = now
                    step(DeliveryStatus.ACKNOWLEDGED, out)
        if self.events.active:
            for out in outs:
                self.events.emit(Delivered(client_id=client.info.client_id, message=out.message, qos=out.qos))

    def send_retained(self, client: Client, topic_filter: str, granted: int, sub_id: int | None) -> None:
        """[MQTT-3.3.1-9] retained messages go out with RETAIN set, at most the granted QoS."""
        now = self.clock()
        sub_ids = (sub_id,) if sub_id else ()
        expired = []
        may_receive = self.may_receive
        cid = client.info.client_id
        for topic, message in self.retained.match(topic_filter):
            if message.expired(now):
                expired.append(topic)
                continue
            if may_receive is not None and not may_receive(cid, topic):
                continue
            qos = min(message.qos, granted)
            encoder = PublishEncoder(message, now)
            if qos == 0:
                self._send_qos0(client, encoder, True, sub_ids)
            else:
                self._deliver(client.info.client_id, client, encoder, qos, True, sub_ids)
        for topic in expired:
            self.retained.delete(topic)

    def _make_plan(self, topic: str, matches: Matches) -> _Plan:
        by_client: dict[str, list[SubscriptionEntry]] = {}
        for entry in matches.entries:
            by_client.setdefault(entry.client_id, []).append(entry)
        targets = []
        may_receive = self.may_receive
        for cid, entries in by_client.items():
            if may_receive is not None and not may_receive(cid, topic):
                continue
            first = entries[0]
            if len(entries) == 1:
                sub_ids = (first.subscription_id,) if first.subscription_id else ()
                targets.append(_Target(cid, first.qos, first.no_local, first.retain_as_published, sub_ids))
            else:
                targets.append(_Target(cid, 0, False, False, (), tuple(entries)))
        plan = _Plan(targets, matches.groups)
        if len(self._plans) > 50_000:
            self._plans.clear()
        if len(topic) <= 256:  # as the tree's cache: long names are not worth their memory
            self._plans[topic] = (matches, plan)
        return plan

    def restore_subscriptions(self, entries: Iterable[SubscriptionEntry]) -> None:
        for entry in entries:
            self.subscriptions.add(entry)
        self._plans.clear()


def _record(out: Outgoing) -> QueueRecord:
    return QueueRecord(
        message=out.message,
        qos=out.qos,
        retain=out.retain,
        subscription_ids=out.subscription_ids,
        state=out.state,
        packet_id=out.packet_id,
    )
