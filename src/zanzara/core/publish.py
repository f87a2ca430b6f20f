"""Inbound PUBLISH and PUBREL, and the embedded publish: a message in, routed, acknowledged.

The steps of :func:`handle_publish`: count it; refuse RETAIN if unavailable;
refuse the broker's own topics (``$SYS``, ``$share/``); ask the publish
authorizers (a coroutine if there are any); then
:func:`_accept_publish`: a resent QoS 2 id is acknowledged, not delivered
again; a refused message is acknowledged with its reason (3.1.1: dropped);
else the message is built by the push rules, routed, and acknowledged once
the commit that holds it is done (group commit).  PUBREL releases the
incoming QoS 2 id, durably before the PUBCOMP for a stored session.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgument, ProtocolError
from ..mqtt import reason_codes
from ..mqtt.enums import ProtocolVersion, ReasonCode
from ..mqtt.packets import Packet, PubAck, PubComp, Publish, PubRec, PubRel
from ..mqtt.properties import EMPTY_PROPERTIES, Properties
from ..mqtt.topics import validate_topic_name
from . import routing
from .client import Client
from .commits import ack_after_commit
from .push_rules import make_message
from .state import CoreState

__all__ = ["PublishResult", "handle_publish", "handle_pubrel", "is_reserved", "publish"]

logger = logging.getLogger(__name__)

V5 = ProtocolVersion.MQTT5
Pending = Coroutine[Any, Any, None]

# v5 publishers learn that the message reached live subscribers but is not durable.
_UNSTORED = Properties(reason_string="store unavailable")
_RESERVED = ("$SYS/", "$share/")


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What a server-side publish did."""

    # Look delivery receipts up with it; None for QoS 0 messages (not tracked) and dry runs.
    message_id: str | None
    # How many sessions the message matched (a shared group counts once: one member gets it).
    matched: int
    # Of those: sent now (connected, and room in flight), and queued for later (QoS 1/2).
    # The rest got nothing: QoS 0 to an offline or too slow client, or the message expired.
    sent: int = 0
    queued: int = 0


def handle_publish(state: CoreState, client: Client, packet: Publish) -> Pending | None:
    state.stats.received_by_qos[packet.qos] += 1
    if packet.retain and not state.config.retain_available:
        raise ProtocolError(
            "retain not supported", ReasonCode.RETAIN_NOT_SUPPORTED
        )  # section 3.3.1.3, [MQTT-3.2.2-14]
    topic = packet.topic
    # '$' sorts just below '%': topics not starting with '$' cost one cheap comparison.
    if topic < "%" and is_reserved(topic):
        _accept_publish(state, client, packet, ReasonCode.NOT_AUTHORIZED)
        return None
    if state.publish_authorizers:
        return _authorize_publish(state, client, packet)
    _accept_publish(state, client, packet, ReasonCode.SUCCESS)
    return None


def is_reserved(topic: str) -> bool:
    """A topic name only the broker publishes to: ``$SYS`` and below, ``$share/...``.

    MQTT 5.0 section 4.7.2: the server SHOULD prevent clients from using topic names
    beginning with ``$`` to exchange messages with other clients; ``$SYS/`` is the
    server's own tree, and ``$share/`` names shared subscriptions, not topics
    (section 4.8.2), so a message there could only confuse its readers.
    """
    return topic == "$SYS" or topic.startswith(_RESERVED)


async def _authorize_publish(state: CoreState, client: Client, packet: Publish) -> None:
    code: int | None = None
    for hook in state.publish_authorizers:
        code = await hook.authorize_publish(client.info, packet.topic, packet.qos, packet.retain)
        if code is not None:
            break
    _accept_publish(state, client, packet, ReasonCode.SUCCESS if code is None else code)


def _accept_publish(state: CoreState, client: Client, packet: Publish, code: int) -> None:
    qos = packet.qos
    pid = packet.packet_id
    if qos == 2:
        incoming = client.session.incoming_qos2
        if pid in incoming:
            # [MQTT-4.3.3-10] a resent QoS 2 PUBLISH is not delivered again.
            ack_after_commit(state, client, PubRec(packet_id=pid))
            return
    if code and reason_codes.is_failure(code):  # most publishes are allowed: 0, no call
        # Refused: 3.1.1 has no way to say so, the message is acknowledged and dropped.
        state.stats.publishes_refused += 1
        logger.debug("publish to %s by %s refused (0x%02x)", packet.topic, client.info.client_id, code)
        if qos == 1:
            client.link.send(PubAck(packet_id=pid, reason_code=code))  # type: ignore[arg-type]
        elif qos == 2:
            client.link.send(PubRec(packet_id=pid, reason_code=code))  # type: ignore[arg-type]
        return
    props = packet.properties
    message = make_message(
        state, packet.topic, packet.payload, qos, packet.retain, props, client.info.client_id
    )
    matched = routing.route(state, message)
    if not qos:
        return
    assert pid is not None
    v5 = client.version is V5
    rc = 0 if matched or not v5 else ReasonCode.NO_MATCHING_SUBSCRIBERS
    ack_props = EMPTY_PROPERTIES
    if v5 and state.push.ack_message_id and message.message_id is not None:
        # The publisher learns the id under which it can look up delivery receipts.  A user
        # property: protocol.send strips it for a client that asked for no diagnostics
        # ([MQTT-3.1.2-29]) or whose Maximum Packet Size it would exceed ([MQTT-3.4.2-3],
        # [MQTT-3.5.2-3]).
        ack_props = Properties(user_properties=(("message-id", message.message_id),))
    error = ReasonCode.UNSPECIFIED_ERROR
    failed: Packet | None
    if qos == 1:
        failed = PubAck(packet_id=pid, reason_code=error, properties=_UNSTORED) if v5 else None
        ack_after_commit(state, client, PubAck(packet_id=pid, reason_code=rc, properties=ack_props), failed)
        return
    session = client.session
    session.incoming_qos2.add(pid)
    store = state.persisted(session)
    if store is not None:
        # section 4.3.3 the packet id survives a restart, so a resend is not delivered twice.
        store.incoming_put(session.client_id, pid)
    failed = PubRec(packet_id=pid, reason_code=error, properties=_UNSTORED) if v5 else None
    ack_after_commit(state, client, PubRec(packet_id=pid, reason_code=rc, properties=ack_props), failed)


def handle_pubrel(state: CoreState, client: Client, packet: PubRel) -> None:
    incoming = client.session.incoming_qos2
    if packet.packet_id in incoming:
        incoming.discard(packet.packet_id)
        store = state.persisted(client.session)
        if store is not None:
            store.incoming_delete(client.session.client_id, packet.packet_id)
            # After PUBCOMP the client may reuse the packet id for a new message, which the
            # broker must accept (section 4.3.3): the id's release is durable first, or a
            # restart would drop that new message as a resend.
            ack_after_commit(state, client, PubComp(packet_id=packet.packet_id))
            return
        client.link.send(PubComp(packet_id=packet.packet_id))
    else:
        client.link.send(
            PubComp(packet_id=packet.packet_id, reason_code=reason_codes.packet_id_not_found(client.version))
        )


def publish(
    state: CoreState,
    topic: str,
    payload: bytes,
    *,
    qos: int = 0,
    retain: bool = False,
    properties: Properties = EMPTY_PROPERTIES,
    priority: int | None = None,
    collapse_key: str | None = None,
    ttl: int | None = None,
    client_ids: frozenset[str] | None = None,
    dry_run: bool = False,
) -> PublishResult:
    """Publish from the server side (embedded API, admin API); only to the sessions of
    ``client_ids`` among the matching ones when given (targeted push: not retained); with
    ``dry_run`` everything is checked and the matches counted, and nothing published."""
    cfg = state.config
    try:
        validate_topic_name(topic, max_levels=cfg.max_topic_levels, max_length=cfg.max_topic_length)
    except ProtocolError as exc:  # a peer's fault when a client sends it; here, our caller's
        raise InvalidArgument(f"topic {topic!r}: {exc}") from None
    if qos not in (0, 1, 2):
        raise InvalidArgument(f"qos must be 0, 1 or 2, not {qos!r}")
    if priority is not None and not 0 <= priority <= 255:
        raise InvalidArgument(f"priority must be 0..255, not {priority!r}")
    if ttl is not None and not 1 <= ttl <= 0xFFFFFFFF:
        raise InvalidArgument(f"ttl must be 1..4294967295 seconds, not {ttl!r}")
    if client_ids is not None and retain:
        # A retained message is for every future subscriber: it cannot be targeted.
        raise InvalidArgument("a targeted publish (client_ids) cannot be retained")
    message = make_message(
        state,
        topic,
        payload,
        qos,
        retain,
        properties,
        None,
        priority=priority,
        collapse_key=collapse_key,
        ttl=ttl,
    )
    reach = routing.route_counted(state, message, client_ids, dry_run=dry_run)
    message_id = None if dry_run else message.message_id
    return PublishResult(message_id, reach.matched, reach.sent, reach.queued)
