"""SUBSCRIBE and UNSUBSCRIBE: filters checked, authorized, kept, acknowledged, retained sent.

The steps of :func:`handle_subscribe`: a malformed filter is a protocol
violation; each well-formed one gets its granted QoS or a failure code (our
limits, shared or wildcard subscriptions switched off); the subscribe
authorizers may refuse or downgrade (a coroutine if there are any); the
accepted filters go into the session and the tree (and the store), within
``max_subscriptions``; SUBACK once they are durable, then the retained
messages each filter asks for (Retain Handling).  UNSUBSCRIBE removes, and
its UNSUBACK too waits for the removal to be durable.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

from ..errors import ProtocolError, ProtocolViolation
from ..events import Subscribed, Unsubscribed
from ..mqtt import reason_codes
from ..mqtt.enums import ProtocolVersion, ReasonCode, RetainHandling
from ..mqtt.packets import SubAck, Subscribe, Subscription, UnsubAck, Unsubscribe
from ..mqtt.topics import parse_shared, validate_topic_filter, validate_topic_filter_syntax
from ..session import Session
from ..topic_tree import SubscriptionEntry
from . import deliveries
from .client import Client
from .commits import ack_after_commit, after_commit
from .state import CoreState

__all__ = ["handle_subscribe", "handle_unsubscribe"]

logger = logging.getLogger(__name__)

V5 = ProtocolVersion.MQTT5
Pending = Coroutine[Any, Any, None]


def handle_subscribe(state: CoreState, client: Client, packet: Subscribe) -> Pending | None:
    codes = [_check_subscription(state, client, sub) for sub in packet.subscriptions]
    if state.subscribe_authorizers:
        return _authorize_subscribe(state, client, packet, codes)
    _complete_subscribe(state, client, packet, codes)
    return None


async def _authorize_subscribe(state: CoreState, client: Client, packet: Subscribe, codes: list[int]) -> None:
    for i, sub in enumerate(packet.subscriptions):
        if reason_codes.is_failure(codes[i]):
            continue
        for hook in state.subscribe_authorizers:
            code = await hook.authorize_subscribe(client.info, sub)
            if code is not None:
                if reason_codes.is_failure(code):
                    codes[i] = code
                elif code < codes[i]:
                    codes[i] = code  # the hook may downgrade the granted QoS
                break
    _complete_subscribe(state, client, packet, codes)


def _check_subscription(state: CoreState, client: Client, sub: Subscription) -> int:
    """The granted QoS, or a failure reason code (section 3.9.3)."""
    cfg = state.config
    try:
        validate_topic_filter(
            sub.topic_filter, max_levels=cfg.max_topic_levels, max_length=cfg.max_topic_length
        )
    except ProtocolViolation:
        # A malformed filter ([MQTT-4.7.1-1..3], [MQTT-4.7.3-1], [MQTT-4.8.2-1/2]) is a
        # Protocol Error: MQTT 5 section 4.13 DISCONNECT 0x82, 3.1.1 [MQTT-4.8.0-1] close.
        raise
    except ProtocolError as exc:
        # A filter beyond max_topic_length or max_topic_levels is "correctly formed
        # but not allowed": SUBACK 0x8F (section 3.9.3, Table 3-8).
        return exc.reason_code
    group, _ = parse_shared(sub.topic_filter)
    if group is not None:
        if not cfg.shared_subscriptions:
            return ReasonCode.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED
        if sub.no_local:
            # [MQTT-3.8.3-4] No Local on a shared subscription is a protocol error.
            raise ProtocolViolation("no local on a shared subscription")
    if not cfg.wildcard_subscriptions and ("+" in sub.topic_filter or "#" in sub.topic_filter):
        return ReasonCode.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED
    return min(sub.qos, cfg.max_qos)


def _complete_subscribe(state: CoreState, client: Client, packet: Subscribe, codes: list[int]) -> None:
    session = client.session
    store = state.persisted(session)
    sub_ids = packet.properties.subscription_identifiers
    sub_id = sub_ids[0] if sub_ids else None
    retained: list[tuple[Subscription, int, bool]] = []
    room = _subscription_room(state, session)
    for i, sub in enumerate(packet.subscriptions):
        code = codes[i]
        if reason_codes.is_failure(code):
            continue
        if room is not None and sub.topic_filter not in session.subscriptions:
            if room == 0:
                # max_subscriptions: "an implementation or administrative imposed limit
                # has been exceeded", SUBACK 0x97 (section 3.9.3, Table 3-8); 3.1.1 0x80.
                codes[i] = ReasonCode.QUOTA_EXCEEDED
                continue
            room -= 1
        group, _ = parse_shared(sub.topic_filter)
        entry = SubscriptionEntry(
            client_id=session.client_id,
            topic_filter=sub.topic_filter,
            qos=code,
            no_local=sub.no_local,
            retain_as_published=sub.retain_as_published,
            subscription_id=sub_id,
            share_group=group,
        )
        is_new = state.subscriptions.add(entry)
        session.subscriptions[sub.topic_filter] = entry
        if store is not None:
            store.subscription_put(entry)
        if group is None:
            retained.append((sub, code, is_new))
    if logger.isEnabledFor(logging.DEBUG):
        _log_subscribe(session.client_id, packet, codes)
    codes = list(reason_codes.for_suback(codes, client.version))

    def finish() -> None:
        client.link.send(SubAck(packet_id=packet.packet_id, reason_codes=tuple(codes)))
        for sub, granted, is_new in retained:
            handling = sub.retain_handling
            if handling is RetainHandling.DO_NOT_SEND or (
                handling is RetainHandling.SEND_IF_NEW_SUBSCRIPTION and not is_new
            ):
                continue
            deliveries.send_retained(state, client, sub.topic_filter, granted, sub_id)
        if state.events.active:
            state.events.emit(
                Subscribed(client=client.info, subscriptions=packet.subscriptions, reason_codes=tuple(codes))
            )

    def failed() -> None:
        # Not durable: refuse every filter rather than acknowledge what a restart would forget.
        client.link.send(SubAck(packet_id=packet.packet_id, reason_codes=(0x80,) * len(codes)))

    after_commit(state, client, finish, failed)


def _log_subscribe(client_id: str, packet: Subscribe, codes: list[int]) -> None:
    """One line per filter, as Mosquitto's debug log: the filter, the QoS asked and the answer."""
    for sub, code in zip(packet.subscriptions, codes, strict=True):
        outcome = f"refused (0x{code:02x})" if reason_codes.is_failure(code) else f"granted QoS {code}"
        logger.debug(
            "%s subscribed to %s at QoS %d: %s",
            client_id,
            sub.topic_filter,
            sub.qos,
            outcome,
            extra={"client_id": client_id, "event": "subscribed"},
        )


def _subscription_room(state: CoreState, session: Session) -> int | None:
    """How many more filters ``session`` may hold; None: no limit."""
    cap = state.config.max_subscriptions
    if not cap:
        return None
    # Never negative: a session restored with more than a since lowered cap keeps them.
    return max(cap - len(session.subscriptions), 0)


def handle_unsubscribe(state: CoreState, client: Client, packet: Unsubscribe) -> None:
    for topic_filter in packet.topic_filters:
        # A malformed filter is a Protocol Error here as in SUBSCRIBE (MQTT 5 section 4.13,
        # 3.1.1 [MQTT-4.8.0-1]), checked before anything is removed.  Our limits are not
        # checked: a filter beyond them was never subscribed, and gets 0x11 below.
        validate_topic_filter_syntax(topic_filter)
    session = client.session
    store = state.persisted(session)
    codes = []
    for topic_filter in packet.topic_filters:
        existed = state.subscriptions.remove(session.client_id, topic_filter)
        session.subscriptions.pop(topic_filter, None)
        if existed and store is not None:
            store.subscription_delete(session.client_id, topic_filter)
        codes.append(ReasonCode.SUCCESS if existed else ReasonCode.NO_SUBSCRIPTION_EXISTED)
        logger.debug(
            "%s unsubscribed from %s%s",
            session.client_id,
            topic_filter,
            "" if existed else " (no such subscription)",
            extra={"client_id": session.client_id, "event": "unsubscribed"},
        )
    # [MQTT-3.10.4-4] UNSUBACK even when nothing was removed; for a stored session, once the
    # removal is durable (as SUBACK waits for subscriptions), so a restart cannot bring back
    # a subscription the client was told is gone.
    ack_after_commit(state, client, UnsubAck(packet_id=packet.packet_id, reason_codes=tuple(codes)))
    if state.events.active:
        state.events.emit(Unsubscribed(client=client.info, topic_filters=packet.topic_filters))
