"""Routing: from a message to every session that should get it.

A topic becomes a cached delivery :class:`Plan` (one target per client,
overlapping subscriptions merged, shared groups apart); :func:`route` walks it
and hands each target to :mod:`.deliveries`.  Where a message goes is decided
here; how and when it is sent, there.

The steps of :func:`route`: keep or clear the retained copy, tell listeners,
match the topic (cached plan), skip expired messages, then deliver to each
target and one member of each shared group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..events import Published
from ..message import Message
from ..protocol import PublishEncoder
from ..topic_tree import Matches, SubscriptionEntry
from . import deliveries
from .plan import Plan, Target
from .state import CoreState

__all__ = ["Reach", "invalidate", "route", "route_counted"]

# Plans are cached per topic up to this many, for topics up to this long (as the tree's cache).
MAX_PLANS = 50_000
MAX_CACHED_TOPIC = 256


def invalidate(state: CoreState) -> None:
    """Subscriptions (or an ACL's answers) changed: forget every cached plan."""
    state.plans.clear()


def route(state: CoreState, message: Message) -> int:
    """Store if retained, then route to every matching session; returns the match count."""
    if message.retain:
        _retain(state, message)
    if state.events.active:
        state.events.emit(Published(client_id=message.sender, message=message))
    matches = state.subscriptions.match(message.topic)
    cached = state.plans.get(message.topic)
    plan = (
        cached[1]
        if cached is not None and cached[0] is matches
        else _make_plan(state, message.topic, matches)
    )
    targets = plan.targets
    if not targets and not plan.groups:
        return 0
    now = state.clock()
    if message.expired(now):
        state.stats.messages_expired += 1
        return len(targets)
    encoder = PublishEncoder(message, now)
    clients = state.clients
    sender = message.sender
    mqos = message.qos
    mretain = message.retain
    send_qos0 = deliveries.send_qos0
    deliver = deliveries.deliver
    for target in targets:
        if target.entries:
            _deliver_overlapping(state, target, encoder)
            continue
        if target.no_local and target.client_id == sender:
            continue  # [MQTT-3.8.3-3]
        qos = mqos if mqos < target.qos else target.qos
        retain = mretain and target.retain_as_published  # [MQTT-3.3.1-12], [MQTT-3.3.1-13]
        client = clients.get(target.client_id)
        if qos == 0:
            if client is not None:
                send_qos0(state, client, encoder, retain, target.subscription_ids)
            continue
        deliver(state, target.client_id, client, encoder, qos, retain, target.subscription_ids)
    may_receive = state.may_receive
    for group in plan.groups:
        entry = group.pick(clients.__contains__)
        if entry is None or (may_receive is not None and not may_receive(entry.client_id, message.topic)):
            continue
        qos = min(mqos, entry.qos)
        sub_ids = (entry.subscription_id,) if entry.subscription_id else ()
        client = clients.get(entry.client_id)
        if qos == 0:
            if client is not None:
                send_qos0(state, client, encoder, False, sub_ids)
        else:
            deliver(state, entry.client_id, client, encoder, qos, False, sub_ids)
    return len(targets) + len(plan.groups)


@dataclass(frozen=True, slots=True)
class Reach:
    """Where a server-side publish went: sessions matched, of which sent now and queued."""

    matched: int = 0
    sent: int = 0
    queued: int = 0


def route_counted(
    state: CoreState, message: Message, only: frozenset[str] | None = None, *, dry_run: bool = False
) -> Reach:
    """Route as :func:`route` does, counting per session, for the admin API's push: only to the
    sessions in ``only`` when given (targeted push; shared groups pick among those), and with
    ``dry_run`` nothing is published, only matched sessions are counted.

    Apart from :func:`route` so that the per-delivery loop clients' PUBLISH go through keeps no
    counting or filtering of its own.
    """
    if not dry_run and message.retain:
        _retain(state, message)
    plan = _plan_for(state, message.topic)
    targets = [t for t in plan.targets if only is None or t.client_id in only]
    clients = state.clients
    picks = []
    may_receive = state.may_receive
    for group in plan.groups:
        if only is None:
            entry = group.pick(clients.__contains__)
        else:
            # Targeted: one of the group's members among ``only``, a connected one if any.
            members = [e for e in group.members if e.client_id in only]
            entry = next((e for e in members if e.client_id in clients), members[0] if members else None)
        if entry is None or (may_receive is not None and not may_receive(entry.client_id, message.topic)):
            continue
        picks.append(entry)
    matched = len(targets) + len(picks)
    if dry_run:
        return Reach(matched)
    if state.events.active:
        state.events.emit(Published(client_id=message.sender, message=message))
    now = state.clock()
    if not matched:
        return Reach(0)
    if message.expired(now):
        state.stats.messages_expired += 1  # as route() counts it
        return Reach(matched)
    encoder = PublishEncoder(message, now)
    sent = queued = 0
    for target in targets:
        if target.entries:
            qos, retain, sub_ids = _merged(message, target.entries)
        else:
            qos = min(message.qos, target.qos)
            retain = message.retain and target.retain_as_published
            sub_ids = target.subscription_ids
        now_sent = _deliver_one(state, target.client_id, encoder, qos, retain, sub_ids)
        sent += now_sent is True
        queued += now_sent is False
    for entry in picks:
        sub_ids = (entry.subscription_id,) if entry.subscription_id else ()
        now_sent = _deliver_one(state, entry.client_id, encoder, min(message.qos, entry.qos), False, sub_ids)
        sent += now_sent is True
        queued += now_sent is False
    return Reach(matched, sent, queued)


def _deliver_one(
    state: CoreState,
    client_id: str,
    encoder: PublishEncoder,
    qos: int,
    retain: bool,
    sub_ids: tuple[int, ...],
) -> bool | None:
    """True: sent now; False: queued; None: neither (QoS 0 to an offline or congested client)."""
    client = state.clients.get(client_id)
    if qos == 0:
        if client is None:
            return None
        return True if deliveries.send_qos0(state, client, encoder, retain, sub_ids) else None
    if client is None and client_id not in state.sessions:
        return None
    return deliveries.deliver(state, client_id, client, encoder, qos, retain, sub_ids)


def _plan_for(state: CoreState, topic: str) -> Plan:
    """The cached plan of ``topic`` (:func:`route` inlines this)."""
    matches = state.subscriptions.match(topic)
    cached = state.plans.get(topic)
    return cached[1] if cached is not None and cached[0] is matches else _make_plan(state, topic, matches)


def _retain(state: CoreState, message: Message) -> None:
    # The broker's $SYS tree describes the running broker: not kept across a restart
    # (as Mosquitto), and clients cannot publish there (publish.is_reserved).
    store = state.store if not message.topic.startswith("$SYS/") else None
    if message.payload:
        state.retained.set(message.topic, message)
        if store is not None:
            store.retained_put(message)
    else:
        # [MQTT-3.3.1-6] an empty retained message clears the topic and is not stored.
        state.retained.delete(message.topic)
        if store is not None:
            store.retained_delete(message.topic)


def _deliver_overlapping(state: CoreState, target: Target, encoder: PublishEncoder) -> None:
    message = encoder.message
    entries = [e for e in target.entries if not (e.no_local and e.client_id == message.sender)]
    if entries:
        _deliver_one(state, target.client_id, encoder, *_merged(message, entries))


def _merged(message: Message, entries: Sequence[SubscriptionEntry]) -> tuple[int, bool, tuple[int, ...]]:
    """(QoS, retain, subscription ids) of one copy for a client's overlapping subscriptions:
    [MQTT-3.3.4-2] the highest QoS of them; [MQTT-3.3.4-3] all of their identifiers."""
    qos = min(message.qos, max(e.qos for e in entries))
    retain = message.retain and any(e.retain_as_published for e in entries)
    return qos, retain, tuple(sorted({e.subscription_id for e in entries if e.subscription_id}))


def _make_plan(state: CoreState, topic: str, matches: Matches) -> Plan:
    by_client: dict[str, list[SubscriptionEntry]] = {}
    for entry in matches.entries:
        by_client.setdefault(entry.client_id, []).append(entry)
    targets = []
    may_receive = state.may_receive
    for cid, entries in by_client.items():
        if may_receive is not None and not may_receive(cid, topic):
            continue
        first = entries[0]
        if len(entries) == 1:
            sub_ids = (first.subscription_id,) if first.subscription_id else ()
            targets.append(Target(cid, first.qos, first.no_local, first.retain_as_published, sub_ids))
        else:
            targets.append(Target(cid, 0, False, False, (), tuple(entries)))
    plan = Plan(targets, matches.groups)
    plans = state.plans
    if len(plans) > MAX_PLANS:
        plans.clear()
    if len(topic) <= MAX_CACHED_TOPIC:  # long names are not worth their memory
        plans[topic] = (matches, plan)
    return plan
