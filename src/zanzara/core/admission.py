"""Admission: a client the hooks let in gets its session, its CONNACK and its backlog.

The steps of :func:`admit`: refuse if a hook said no; build the CONNACK and
close silently if even that exceeds the client's Maximum Packet Size; take
over an existing connection with the same client id (v5: DISCONNECT 0x8E);
cancel a delayed will and the session's expiry; resume or start the session
(clean start discards it); store it with its will; send CONNACK; resend what
was in flight and pump the queue.
"""

from __future__ import annotations

import logging
from typing import Any

from ..events import ClientConnected, DisconnectReason
from ..hooks import AuthResult, ClientInfo
from ..mqtt.enums import ProtocolVersion, ReasonCode
from ..mqtt.packets import ConnAck, Connect
from ..mqtt.properties import EMPTY_PROPERTIES, Properties
from ..session import NEVER_EXPIRES, Session
from . import deliveries, lifecycle, sys_topics
from .client import REFUSED, Admitted, Client, ClientLink, Refused
from .state import CoreState

__all__ = ["admit", "take_over", "unchecked_decision"]

logger = logging.getLogger(__name__)

V5 = ProtocolVersion.MQTT5
_VERSIONS = {ProtocolVersion.MQTT31: "3.1", ProtocolVersion.MQTT311: "3.1.1", V5: "5.0"}


def unchecked_decision(state: CoreState, link: ClientLink) -> ReasonCode:
    """The answer when no hook decided: ``allow_anonymous``, as in Mosquitto 2.

    A username nobody checked is no credential, so it does not get a client in;
    a certificate identity (use_identity_as_username) was checked by the TLS
    handshake and does.
    """
    if state.allow_anonymous or link.identity_as_username:
        return ReasonCode.SUCCESS
    return ReasonCode.NOT_AUTHORIZED


def admit(
    state: CoreState,
    link: ClientLink,
    packet: Connect,
    info: ClientInfo,
    assigned: str | None,
    code: int,
    settings: AuthResult | None = None,
    authentication: Properties | None = None,
) -> Admitted | Refused:
    if code != ReasonCode.SUCCESS:
        link.refuse(code)
        return REFUSED
    if not link.is_connecting:  # closed while a hook was awaited
        return REFUSED
    cfg = state.config
    client_id = info.client_id
    version = packet.protocol_version
    expiry = _session_expiry(state, packet)
    keep_alive, connack_props = _connack_properties(state, packet, expiry, assigned, authentication)
    if not link.fits(ConnAck(properties=connack_props)):
        # [MQTT-3.1.2-24] nothing we send may exceed the client's Maximum Packet Size, and
        # without a CONNACK the connection cannot go on: close it without sending anything,
        # before it takes over a connection or a session, or leaves a will.
        logger.info("client %s: CONNACK exceeds its maximum packet size; closing", client_id)
        link.disconnect(ReasonCode.PACKET_TOO_LARGE)
        return REFUSED
    old = state.clients.get(client_id)
    if old is not None:
        take_over(state, old)
    pending_will = state.will_timers.pop(client_id, None)
    if pending_will is not None:
        pending_will[0].cancel()  # [MQTT-3.1.3-9] a reconnect cancels a delayed will
    lifecycle.cancel_timer(state.expiry_timers, client_id)

    session = state.sessions.get(client_id)
    session_present = session is not None and not packet.clean_start
    if session is not None and packet.clean_start:
        # [MQTT-3.1.2-4] clean start discards any existing session.
        lifecycle.end_session(state, session, with_will=False)
        session = None
    if session is None:
        session = Session(client_id=client_id)
        state.sessions[client_id] = session
    session.expiry_interval = expiry
    # Per-device quota from the authentication hook (persisted with the session).
    if settings is None:
        lifecycle.set_quota(state, session, None, None)
    else:
        lifecycle.set_quota(state, session, settings.max_queued_messages, settings.max_queued_bytes)
    session.disconnected_at = None
    lifecycle.persist(state, session, packet.will)
    session.max_inflight = min(cfg.max_inflight_messages, link.receive_maximum)

    client = Client(
        link=link,
        session=session,
        info=info,
        version=version,
        will=packet.will,
        keep_alive=keep_alive,
        clean_start=packet.clean_start,
        connected_at=state.clock(),
    )
    state.clients[client_id] = client
    state.stats.connections_total += 1
    link.accept(ConnAck(session_present=session_present, properties=connack_props), keep_alive)
    if session_present:
        deliveries.resend_inflight(state, client)
    deliveries.pump(state, client)
    if state.events.active:
        state.events.emit(ClientConnected(client=info, session_present=session_present))
    logger.info(
        "%s connected from %s on %s: MQTT %s, clean start %s, session expiry %s, session present %s",
        client_id,
        info.address or "an unknown address",
        info.listener or "the embedded API",
        _VERSIONS[version],
        "yes" if packet.clean_start else "no",
        "never" if expiry == NEVER_EXPIRES else f"{expiry} s",
        "yes" if session_present else "no",
        extra={"client_id": client_id, "event": "connected"},
    )
    if state.presence_node is not None:
        sys_topics.presence(
            state,
            state.presence_node,
            info,
            "connected",
            clean_start=packet.clean_start,
            session_expiry=expiry,
            session_present=session_present,
            keep_alive=keep_alive,
        )
    return Admitted(client)


def _connack_properties(
    state: CoreState, packet: Connect, expiry: int, assigned: str | None, authentication: Properties | None
) -> tuple[int, Properties]:
    """The keep alive the client must use, and the properties of its CONNACK."""
    keep_alive = packet.keep_alive
    if packet.protocol_version is not V5:
        return keep_alive, EMPTY_PROPERTIES
    cfg = state.config
    props: dict[str, Any] = {}
    if keep_alive > cfg.max_keepalive or (keep_alive == 0 and cfg.max_keepalive < 65535):
        # [MQTT-3.2.2-21] the client must use the Server Keep Alive we send.
        keep_alive = cfg.max_keepalive
        props["server_keep_alive"] = keep_alive
    if assigned:
        props["assigned_client_identifier"] = assigned
    props.update(_connack_capabilities(state, expiry, packet))
    if authentication is not None:
        props["authentication_method"] = authentication.authentication_method
        props["authentication_data"] = authentication.authentication_data
    return keep_alive, Properties(**props) if props else EMPTY_PROPERTIES


def _session_expiry(state: CoreState, packet: Connect) -> int:
    cfg = state.config
    if packet.protocol_version is V5:
        expiry = packet.properties.session_expiry_interval or 0
        if cfg.session_expiry_max is not None:
            expiry = min(expiry, cfg.session_expiry_max)
        return expiry
    if packet.clean_start:
        return 0
    if cfg.persistent_client_expiration is not None:
        return cfg.persistent_client_expiration
    return NEVER_EXPIRES


def _connack_capabilities(state: CoreState, expiry: int, packet: Connect) -> dict[str, Any]:
    cfg = state.config
    props: dict[str, Any] = {}
    requested = packet.properties.session_expiry_interval or 0
    if expiry != requested:
        props["session_expiry_interval"] = expiry
    if cfg.receive_maximum != 65535:
        props["receive_maximum"] = cfg.receive_maximum
    if cfg.max_qos < 2:
        props["maximum_qos"] = cfg.max_qos
    if not cfg.retain_available:
        props["retain_available"] = 0
    if cfg.max_packet_size < 268_435_455:
        props["maximum_packet_size"] = cfg.max_packet_size
    if cfg.topic_alias_maximum:
        props["topic_alias_maximum"] = cfg.topic_alias_maximum
    if not cfg.wildcard_subscriptions:
        props["wildcard_subscription_available"] = 0
    if not cfg.subscription_identifiers:
        props["subscription_identifier_available"] = 0
    if not cfg.shared_subscriptions:
        props["shared_subscription_available"] = 0
    return props


def take_over(state: CoreState, old: Client) -> None:
    """[MQTT-3.1.4-3] close the existing connection; v5 tells it why (0x8E)."""
    old.disconnect_reason = DisconnectReason.TAKEOVER
    old.link.disconnect(ReasonCode.SESSION_TAKEN_OVER)
    lifecycle.disconnected(state, old)
