"""MQTT 5 enhanced authentication (section 4.12): AUTH exchanges at CONNECT and re-authentication.

One :class:`~zanzara.hooks.EnhancedAuthenticator` per Authentication Method
answers each step; the exchange in progress lives with the connection
(``ClientLink.auth_exchange``) so that it goes when the connection does.
At CONNECT the steps are: an unknown method gets CONNACK 0x8C; each hook step
either asks for more (AUTH 0x18), refuses (CONNACK >= 0x80) or admits.  A
re-authentication that fails, or that proves another identity, ends the
connection with DISCONNECT.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

from ..auth.exchange import AuthExchange
from ..errors import ProtocolError, ProtocolViolation
from ..events import DisconnectReason
from ..hooks import AuthStep, ClientInfo
from ..mqtt import reason_codes
from ..mqtt.enums import ReasonCode
from ..mqtt.packets import Auth, Connect
from .admission import admit
from .client import (
    CHALLENGE,
    REFUSED,
    Admitted,
    Awaiting,
    Challenge,
    Client,
    ClientLink,
    ConnectResult,
    Refused,
)
from .state import CoreState

__all__ = ["continue_connect", "handle_auth", "start_exchange"]

logger = logging.getLogger(__name__)

Pending = Coroutine[Any, Any, None]


def start_exchange(
    state: CoreState, link: ClientLink, packet: Connect, info: ClientInfo, assigned: str | None, method: str
) -> ConnectResult:
    hook = state.enhanced_authenticators.get(method)
    if hook is None:
        # [MQTT-4.12.0-1] an unsupported method: CONNACK 0x8C, then close.
        logger.info("client %s: unsupported authentication method %r", info.client_id, method)
        link.refuse(ReasonCode.BAD_AUTHENTICATION_METHOD, f"unsupported method {method}")
        return REFUSED
    exchange = AuthExchange(authenticator=hook, client=info, connect=packet, assigned_client_id=assigned)
    return Awaiting(_connect_step(state, link, exchange, packet.properties.authentication_data))


def continue_connect(state: CoreState, link: ClientLink, packet: Auth) -> ConnectResult:
    """The client's AUTH 0x18 before CONNACK: the next step of its authentication."""
    exchange = link.auth_exchange
    if exchange is None or exchange.connect is None:
        raise ProtocolViolation("AUTH outside an authentication")
    return Awaiting(_connect_step(state, link, exchange, packet.properties.authentication_data))


async def _connect_step(
    state: CoreState, link: ClientLink, exchange: AuthExchange, data: bytes | None
) -> Admitted | Refused | Challenge:
    step = await exchange.advance(data)
    if not link.is_connecting:  # closed while the hook was awaited
        return REFUSED
    link.auth_exchange = None if step.done else exchange
    if not step.done:
        # [MQTT-4.12.0-2] the server asks for more with AUTH 0x18.
        link.send(Auth(reason_code=step.reason_code, properties=exchange.properties(step)))
        return CHALLENGE
    if step.reason_code is not ReasonCode.SUCCESS:
        # [MQTT-4.12.0-4] the server may reject at any point: CONNACK >= 0x80, then close.
        logger.info("client %s: %s authentication failed", exchange.client.client_id, exchange.method)
        link.refuse(reason_codes.fit(step.reason_code, reason_codes.CONNACK))
        return REFUSED
    assert exchange.connect is not None
    info = exchange.authenticated(step)
    if state.on_authenticated is not None:
        state.on_authenticated(info)
    return admit(
        state,
        link,
        exchange.connect,
        info,
        exchange.assigned_client_id,
        ReasonCode.SUCCESS,
        step.settings,
        exchange.properties(step),
    )


def handle_auth(state: CoreState, client: Client, packet: Auth) -> Pending:
    """Re-authentication (section 4.12.1): AUTH 0x19 starts it, AUTH 0x18 continues it."""
    link = client.link
    if packet.reason_code == ReasonCode.RE_AUTHENTICATE:
        # The protocol checked that the method is the CONNECT's [MQTT-4.12.1-1].
        hook = state.enhanced_authenticators.get(link.auth_method or "")
        if hook is None:
            raise ProtocolError("method no longer offered", ReasonCode.BAD_AUTHENTICATION_METHOD)
        exchange = AuthExchange(authenticator=hook, client=client.info)
    else:
        pending = link.auth_exchange
        if pending is None:
            raise ProtocolViolation("AUTH outside an authentication")
        exchange = pending
    return _reauth_step(state, client, exchange, packet.properties.authentication_data)


async def _reauth_step(state: CoreState, client: Client, exchange: AuthExchange, data: bytes | None) -> None:
    step = await exchange.advance(data)
    link = client.link
    if not link.is_open:
        return
    link.auth_exchange = None if step.done else exchange
    if step.reason_code is ReasonCode.SUCCESS and exchange.authenticated(step) != client.info:
        # Hooks, ACLs and sessions know the connection by the identity it was admitted with.
        logger.info("client %s re-authenticated as another user", client.info.client_id)
        step = AuthStep.failure(ReasonCode.NOT_AUTHORIZED)
    if reason_codes.is_failure(step.reason_code):
        # [MQTT-4.12.1-2] a failed re-authentication: DISCONNECT with the reason, then close.
        logger.info("client %s: %s re-authentication failed", client.info.client_id, exchange.method)
        client.disconnect_reason = DisconnectReason.NOT_AUTHORIZED
        # DISCONNECT has no 0x86 or 0x8C (table 3.14.2.1): those become 0x87 Not authorized.
        code = reason_codes.fit(step.reason_code, reason_codes.DISCONNECT)
        link.disconnect(code, "re-authentication failed")
        return
    # 0x18 asks for more; 0x00 ends it, and packets flowed meanwhile on the old authentication.
    link.send(Auth(reason_code=step.reason_code, properties=exchange.properties(step)))
