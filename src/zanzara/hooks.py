"""Extension points: who may connect, publish and subscribe.

Decisions are awaited inline, in order: each hook returns a reason code to
decide, or ``None`` to let the next hook decide (a chain, like Mosquitto's
plugin chain and Aedes' ``authenticate``/``authorizePublish``).  When every
hook abstains, the broker's default applies (``allow_anonymous`` for
authentication, allow for authorization).

This module holds only the Protocols and the value objects passed to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .mqtt.enums import ProtocolVersion, ReasonCode
from .mqtt.packets import Subscription, Will
from .mqtt.properties import EMPTY_PROPERTIES, Properties

__all__ = [
    "AuthResult",
    "Authenticator",
    "Authorizer",
    "ClientInfo",
    "ConnectRequest",
    "PublishAuthorizer",
    "SubscribeAuthorizer",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientInfo:
    """Who a connected client is, as hooks and events see it."""

    client_id: str
    username: str | None = None
    protocol_version: ProtocolVersion = ProtocolVersion.MQTT311
    # "host:port" of the peer, or None when unknown.
    address: str | None = None
    listener: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectRequest:
    """Everything a CONNECT carried, for authentication."""

    client: ClientInfo
    password: bytes | None = None
    clean_start: bool = True
    keep_alive: int = 0
    will: Will | None = None
    properties: Properties = EMPTY_PROPERTIES


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthResult:
    """An authentication decision with per-client settings (e.g. a device's queue quota)."""

    reason_code: ReasonCode = ReasonCode.SUCCESS
    # Override [mqtt] max_queued_messages / max_queued_bytes for this client's session.
    max_queued_messages: int | None = None
    max_queued_bytes: int | None = None


@runtime_checkable
class Authenticator(Protocol):
    async def authenticate(self, request: ConnectRequest) -> ReasonCode | AuthResult | None:
        """SUCCESS (or an AuthResult) to accept, a failure code to refuse, None to abstain."""


@runtime_checkable
class PublishAuthorizer(Protocol):
    async def authorize_publish(
        self, client: ClientInfo, topic: str, qos: int, retain: bool
    ) -> ReasonCode | None:
        """SUCCESS to allow, a failure code (e.g. NOT_AUTHORIZED) to refuse, None to abstain."""


@runtime_checkable
class SubscribeAuthorizer(Protocol):
    async def authorize_subscribe(self, client: ClientInfo, subscription: Subscription) -> ReasonCode | None:
        """A granted QoS or SUCCESS to allow, a failure code (e.g. 0x80, 0x87) to refuse, None to abstain."""


@runtime_checkable
class Authorizer(PublishAuthorizer, SubscribeAuthorizer, Protocol):
    """Both authorization hooks in one object."""
