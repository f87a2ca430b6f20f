"""One MQTT 5 enhanced authentication conversation (section 4.12).

:class:`AuthExchange` is what the broker remembers between the round trips of
one authentication: the method's hook, the client, its last :class:`AuthStep`
and, during CONNECT, the CONNECT that waits for its CONNACK.  The broker keeps
it on the connection's protocol object, so it ends with the connection.

Must not import asyncio or the transports.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..hooks import AuthStep, ClientInfo, EnhancedAuthenticator
from ..mqtt.packets import Connect
from ..mqtt.properties import Properties

__all__ = ["AuthExchange"]


@dataclass(slots=True, kw_only=True, eq=False)
class AuthExchange:
    """The state of one enhanced authentication between round trips; made and advanced by the
    core (``core/enhanced_auth.py``), which drops it when a step is done."""

    authenticator: EnhancedAuthenticator
    client: ClientInfo
    # The CONNECT waiting for its CONNACK; None when re-authenticating after CONNACK.
    connect: Connect | None = None
    assigned_client_id: str | None = None
    step: AuthStep | None = None

    @property
    def method(self) -> str:
        return self.authenticator.method

    async def advance(self, data: bytes | None) -> AuthStep:
        """The method's next step for the client's Authentication Data (its first step at first)."""
        hook = self.authenticator
        if self.step is None:
            step = await hook.start(self.client, data)
        else:
            step = await hook.continue_(self.step, data)
        if not isinstance(step, AuthStep):
            raise TypeError(f"{type(hook).__name__} returned {type(step).__name__}, not an AuthStep")
        self.step = step
        return step

    def properties(self, step: AuthStep) -> Properties:
        # [MQTT-4.12.0-5] every AUTH and the successful CONNACK carry the CONNECT's method.
        return Properties(authentication_method=self.method, authentication_data=step.data)

    def authenticated(self, step: AuthStep) -> ClientInfo:
        """The client as hooks and ACLs see it from now on: with the identity the method proved."""
        if step.username is None or step.username == self.client.username:
            return self.client
        return replace(self.client, username=step.username)
