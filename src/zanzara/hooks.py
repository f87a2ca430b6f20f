"""Extension points: who may connect, publish and subscribe.

Decisions are awaited inline, in order: each hook returns a reason code to
decide, or ``None`` to let the next hook decide (a chain, like Mosquitto's
plugin chain and Aedes' ``authenticate``/``authorizePublish``).  When every
hook abstains, the broker's default applies (``allow_anonymous`` for
authentication, allow for authorization).

MQTT 5 enhanced authentication (section 4.12) is not a chain: a CONNECT that
names an Authentication Method is decided by the one
:class:`EnhancedAuthenticator` registered for that method, in as many
:class:`AuthStep` round trips as the method needs.

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
    "AuthStep",
    "Authenticator",
    "Authorizer",
    "ClientInfo",
    "ConnectRequest",
    "EnhancedAuthenticator",
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
    """A link of the authentication chain, awaited for each CONNECT without an Authentication
    Method, in the order added, until one decides."""

    async def authenticate(self, request: ConnectRequest) -> ReasonCode | AuthResult | None:
        """SUCCESS (or an AuthResult) to accept, a failure code to refuse, None to abstain."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthStep:
    """One answer of an enhanced authentication method (MQTT 5 section 4.12).

    ``reason_code`` says what the broker sends: CONTINUE_AUTHENTICATION (0x18)
    an AUTH packet with ``data`` and waits for the client's next AUTH;
    SUCCESS the CONNACK (or, when re-authenticating, AUTH 0x00) with ``data``;
    any code of 0x80 or above refuses: CONNACK with that code, or DISCONNECT
    when re-authenticating.  Build steps with :meth:`challenge`,
    :meth:`success` and :meth:`failure`.
    """

    reason_code: ReasonCode
    data: bytes | None = None
    # The method's memory between round trips, handed back to ``continue_``; opaque to the broker.
    state: object = None
    # On success: the identity the method proved. It replaces the CONNECT's username, so
    # authorizers and ACLs judge the user who authenticated, not the one who was claimed.
    username: str | None = None
    # On success: per-client settings, as from an ordinary authenticator.
    settings: AuthResult | None = None

    def __post_init__(self) -> None:
        # Coerced so a plain int from a hook still compares by identity.
        code = ReasonCode(self.reason_code)
        object.__setattr__(self, "reason_code", code)
        if code not in (ReasonCode.SUCCESS, ReasonCode.CONTINUE_AUTHENTICATION) and code < 0x80:
            # [MQTT-3.15.2-1] only Success, Continue or a failure can answer a client.
            raise ValueError(f"an authentication step cannot answer with {code!r}")

    @classmethod
    def challenge(cls, data: bytes | None, state: object = None) -> AuthStep:
        return cls(reason_code=ReasonCode.CONTINUE_AUTHENTICATION, data=data, state=state)

    @classmethod
    def success(
        cls, data: bytes | None = None, *, username: str | None = None, settings: AuthResult | None = None
    ) -> AuthStep:
        return cls(reason_code=ReasonCode.SUCCESS, data=data, username=username, settings=settings)

    @classmethod
    def failure(cls, reason_code: ReasonCode = ReasonCode.NOT_AUTHORIZED) -> AuthStep:
        return cls(reason_code=reason_code)

    @property
    def done(self) -> bool:
        return self.reason_code is not ReasonCode.CONTINUE_AUTHENTICATION


@runtime_checkable
class EnhancedAuthenticator(Protocol):
    """An MQTT 5 authentication method (SCRAM-SHA-256, Kerberos, a challenge of your own).

    The broker calls :meth:`start` with the Authentication Data of the CONNECT
    (or of an AUTH 0x19 re-authentication), then :meth:`continue_` with the
    previous step and the data of each AUTH 0x18 the client answers with, until
    a step is done (success or failure).  Every call gets a fresh conversation:
    keep what later steps need in :attr:`AuthStep.state`, not on ``self``.
    """

    @property
    def method(self) -> str:
        """The Authentication Method this hook answers, e.g. ``"SCRAM-SHA-256"``."""

    async def start(self, client: ClientInfo, data: bytes | None) -> AuthStep: ...

    async def continue_(self, step: AuthStep, data: bytes | None) -> AuthStep: ...


@runtime_checkable
class PublishAuthorizer(Protocol):
    """A link of the chain awaited for each PUBLISH a client sends, before it is routed.

    A refused message is dropped; a 5.0 client is told in its PUBACK or PUBREC, a 3.x client
    (which has no way to hear it) is acknowledged as usual.
    """

    async def authorize_publish(
        self, client: ClientInfo, topic: str, qos: int, retain: bool
    ) -> ReasonCode | None:
        """SUCCESS to allow, a failure code (e.g. NOT_AUTHORIZED) to refuse, None to abstain."""


@runtime_checkable
class SubscribeAuthorizer(Protocol):
    """A link of the chain awaited for each subscription of a SUBSCRIBE; its answer becomes that
    subscription's code in SUBACK."""

    async def authorize_subscribe(self, client: ClientInfo, subscription: Subscription) -> ReasonCode | None:
        """A granted QoS or SUCCESS to allow, a failure code (e.g. 0x80, 0x87) to refuse, None to abstain."""


@runtime_checkable
class Authorizer(PublishAuthorizer, SubscribeAuthorizer, Protocol):
    """Both authorization hooks in one object."""
