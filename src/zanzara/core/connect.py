"""CONNECT: validate it, then ask who the client is, then admit or refuse it.

The steps of :func:`connect`: the listener's verdicts (over
``max_connections``; the certificate's Common Name as the username), the
client id (3.1's 1-23 characters, an empty id assigned or refused, our length
cap), the will topic, the 3.x keep alive;
then either an MQTT 5 enhanced authentication (``enhanced_auth.py``) or the
password hooks in order (the first that decides wins; none deciding means
``allow_anonymous``); then :func:`~.admission.admit`.  A result that needs a
hook is a coroutine the connection awaits with its reading paused.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from ..errors import ProtocolError
from ..hooks import AuthResult, ClientInfo, ConnectRequest
from ..mqtt.enums import ProtocolVersion, ReasonCode
from ..mqtt.packets import Connect
from ..mqtt.topics import validate_topic_name
from . import enhanced_auth
from .admission import admit, unchecked_decision
from .client import REFUSED, Admitted, Awaiting, ClientLink, ConnectResult, Refused
from .state import CoreState

__all__ = ["connect"]

V5 = ProtocolVersion.MQTT5
V31 = ProtocolVersion.MQTT31


def connect(state: CoreState, link: ClientLink, packet: Connect) -> ConnectResult:
    """Admit or refuse a CONNECT (or say what must be awaited first)."""
    state.stats.connects_received += 1
    if link.over_connection_limit:
        # "An implementation or administrative imposed limit has been exceeded": CONNACK 0x97
        # (section 3.2.2.2, Table 3-1); 3.1.1: 0x03 Server unavailable.
        link.refuse(ReasonCode.QUOTA_EXCEEDED, "too many connections")
        return REFUSED
    if link.identity_as_username:
        if link.certificate_username is None:
            # As Mosquitto: no certificate (or no usable Common Name), no entry.
            link.refuse(ReasonCode.BAD_USER_NAME_OR_PASSWORD, "no client certificate Common Name")
            return REFUSED
        packet = replace(packet, username=link.certificate_username, password=None)
    cfg = state.config
    version = packet.protocol_version
    client_id = packet.client_id
    assigned = None
    if version is V31 and not 1 <= len(client_id) <= 23:
        # MQTT 3.1 (section 3.1, CONNECT payload): "The Client Identifier (Client ID) is between
        # 1 and 23 characters long", else CONNACK return code 2, identifier rejected (as
        # Mosquitto).  3.1 has no Assigned Client Identifier.
        link.refuse(ReasonCode.CLIENT_IDENTIFIER_NOT_VALID, "3.1 client id of 1-23 characters")
        return REFUSED
    if not client_id:
        if not cfg.allow_zero_length_clientid or (version is not V5 and not packet.clean_start):
            # [MQTT-3.1.3-8] a 3.1.1 client with an empty id must ask for a clean session.
            link.refuse(ReasonCode.CLIENT_IDENTIFIER_NOT_VALID, "empty client id")
            return REFUSED
        client_id = assigned = f"auto-{uuid.uuid4().hex}"
    elif len(client_id) > cfg.max_client_id_length:
        link.refuse(ReasonCode.CLIENT_IDENTIFIER_NOT_VALID, "client id too long")
        return REFUSED
    will = packet.will
    if will is not None:
        try:
            validate_topic_name(will.topic, max_levels=cfg.max_topic_levels, max_length=cfg.max_topic_length)
        except ProtocolError as exc:
            # "The Will Topic Name is not malformed, but is not accepted": CONNACK 0x90
            # (section 3.2.2.2); 3.1.1 has no such code and just closes [MQTT-3.1.4-1].
            link.refuse(exc.reason_code, str(exc))
            return REFUSED
    if version is not V5 and packet.keep_alive > cfg.max_keepalive:
        # As Mosquitto: a 3.x client cannot be told a lower keep alive, so it is refused.
        link.refuse(ReasonCode.CLIENT_IDENTIFIER_NOT_VALID, "keep alive above max_keepalive")
        return REFUSED
    info = ClientInfo(
        client_id=client_id,
        username=packet.username,
        protocol_version=version,
        address=link.address,
        listener=link.listener_name,
    )
    method = packet.properties.authentication_method
    if method is not None:
        return enhanced_auth.start_exchange(state, link, packet, info, assigned, method)
    if not state.authenticators:
        return admit(state, link, packet, info, assigned, unchecked_decision(state, link))
    return Awaiting(_authenticate_then_admit(state, link, packet, info, assigned))


async def _authenticate_then_admit(
    state: CoreState, link: ClientLink, packet: Connect, info: ClientInfo, assigned: str | None
) -> Admitted | Refused:
    request = ConnectRequest(
        client=info,
        password=packet.password,
        clean_start=packet.clean_start,
        keep_alive=packet.keep_alive,
        will=packet.will,
        properties=packet.properties,
    )
    decision: ReasonCode | AuthResult | None = None
    for hook in state.authenticators:
        decision = await hook.authenticate(request)
        if decision is not None:
            break
    if decision is None:
        decision = unchecked_decision(state, link)
    if isinstance(decision, AuthResult):
        return admit(state, link, packet, info, assigned, decision.reason_code, decision)
    return admit(state, link, packet, info, assigned, decision)
