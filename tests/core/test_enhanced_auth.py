"""MQTT 5 enhanced authentication (section 4.12) and re-authentication (4.12.1).

A tiny method, ``TOKEN``: CONNECT data ``hello`` gets a challenge ``who?``,
which the answer ``secret`` passes as user ``proved``; data ``ok`` passes at
once; anything else fails.  The hook never suspends, so its coroutines are
stepped without an event loop.
"""

from __future__ import annotations

from typing import Any

from zanzara.core import Awaiting, Client, Core, Refused
from zanzara.hooks import AuthResult, AuthStep, ClientInfo
from zanzara.mqtt.codec import encode
from zanzara.mqtt.enums import ReasonCode
from zanzara.mqtt.packets import Auth, ConnAck, Connect, Disconnect
from zanzara.mqtt.properties import Properties
from zanzara.protocol import ConnectionPhase

from .conftest import (
    RC,
    V5,
    FakeLink,
    Pause,
    connect_packet,
    continue_auth,
    disconnect_code,
    finish,
    open_connection,
    receive,
    sent,
)


class Token:
    """The TOKEN method."""

    method = "TOKEN"

    async def start(self, client: ClientInfo, data: bytes | None) -> AuthStep:
        if data == b"hello":
            return AuthStep.challenge(b"who?", state="asked")
        if data == b"ok":
            return AuthStep.success(b"welcome", settings=AuthResult(max_queued_messages=5))
        return AuthStep.failure()

    async def continue_(self, step: AuthStep, data: bytes | None) -> AuthStep:
        assert step.state == "asked"
        if data == b"secret":
            return AuthStep.success(b"done", username="proved")
        if data == b"other":
            return AuthStep.success(b"done", username="someone else")
        return AuthStep.failure(ReasonCode.BAD_AUTHENTICATION_METHOD)


def token(data: bytes | None = None, method: str = "TOKEN") -> Properties:
    return Properties(authentication_method=method, authentication_data=data)


def connect_with(data: bytes | None, method: str = "TOKEN", **kw: Any) -> Connect:
    """A v5 CONNECT of client "c" with an Authentication Method and Data."""
    return connect_packet("c", authentication_method=method, authentication_data=data, **kw)


def auth(code: int, data: bytes | None = None) -> Auth:
    return Auth(reason_code=code, properties=token(data))


class TestConnect_4_12:
    def test_challenge_then_success(self, core: Core) -> None:
        """[MQTT-4.12.0-2] AUTH 0x18 asks for more; [MQTT-4.12.0-5] each AUTH and CONNACK has the method."""
        core.add_enhanced_authenticator(Token())
        proved: list[ClientInfo] = []
        core.set_acl(lambda cid, topic: True, proved.append)
        link, client = open_connection(core, connect_with(b"hello", username="claimed"))
        assert client is None
        assert link.protocol.phase is ConnectionPhase.CONNECTING
        assert sent(link) == [auth(RC.CONTINUE_AUTHENTICATION, b"who?")]
        client = continue_auth(core, link, b"secret", "TOKEN")
        assert client is not None
        [connack] = sent(link)
        assert isinstance(connack, ConnAck)
        assert connack.reason_code == RC.SUCCESS
        assert (connack.properties.authentication_method, connack.properties.authentication_data) == (
            "TOKEN",
            b"done",
        )
        # The identity the method proved replaces the claimed one, for hooks and ACLs.
        assert client.info.username == "proved"
        assert [info.username for info in proved] == ["proved"]

    def test_success_at_once_with_settings(self, core: Core) -> None:
        """4.12: the first step may succeed; the method's settings (a queue quota) apply to the session."""
        core.add_enhanced_authenticator(Token())
        link, client = open_connection(core, connect_with(b"ok"))
        assert client is not None
        [connack] = sent(link)
        assert isinstance(connack, ConnAck)
        assert connack.properties.authentication_data == b"welcome"
        assert client.session.max_queued == 5

    def test_failure_is_a_connack_then_close(self, core: Core) -> None:
        """[MQTT-4.12.0-4] the server may reject at any step: CONNACK 0x80 or more, then close."""
        core.add_enhanced_authenticator(Token())
        link, client = open_connection(core, connect_with(b"nonsense"))
        assert client is None
        assert [p.reason_code for p in sent(link)] == [RC.NOT_AUTHORIZED]  # type: ignore[union-attr]
        assert link.closed
        assert core.clients == {}

    def test_failure_after_a_challenge(self, core: Core) -> None:
        """[MQTT-4.12.0-4] a wrong answer to the challenge: CONNACK with the method's code, then close."""
        core.add_enhanced_authenticator(Token())
        link, _ = open_connection(core, connect_with(b"hello"))
        sent(link)
        assert continue_auth(core, link, b"wrong", "TOKEN") is None
        [connack] = sent(link)
        assert isinstance(connack, ConnAck)
        assert connack.reason_code == RC.BAD_AUTHENTICATION_METHOD
        assert link.protocol.phase is ConnectionPhase.CLOSED
        assert link.closed

    def test_unknown_method(self, core: Core) -> None:
        """[MQTT-4.12.0-1] a method the server does not support: CONNACK 0x8C Bad authentication method."""
        core.add_enhanced_authenticator(Token())
        link, client = open_connection(core, connect_with(b"x", method="KERBEROS"))
        assert client is None
        assert [p.reason_code for p in sent(link)] == [RC.BAD_AUTHENTICATION_METHOD]  # type: ignore[union-attr]
        assert link.closed

    def test_connection_closed_while_the_hook_decides(self, core: Core) -> None:
        """A connection that went away while its authentication was awaited is not admitted."""

        class Slow(Token):
            async def start(self, client: ClientInfo, data: bytes | None) -> AuthStep:
                await Pause()
                return AuthStep.success()

        core.add_enhanced_authenticator(Slow())
        link = FakeLink(core.config)
        [received] = link.protocol.receive_data(encode(connect_with(b"ok"), V5))
        assert isinstance(received, Connect)
        result = core.connecting(link, received)
        assert isinstance(result, Awaiting)
        result.pending.send(None)  # now waiting in the hook
        link.protocol.disconnect(RC.NORMAL_DISCONNECTION)  # the socket went away meanwhile
        assert isinstance(finish(result.pending), Refused)
        assert core.clients == {}
        assert core.sessions == {}
        assert sent(link) == []


class TestReauthentication_4_12_1:
    def connected(self, core: Core) -> Client:
        core.add_enhanced_authenticator(Token())
        link, client = open_connection(core, connect_with(b"hello"))
        sent(link)
        client = continue_auth(core, link, b"secret", "TOKEN")
        assert client is not None
        sent(link)
        return client

    def test_reauthentication_that_succeeds(self, core: Core) -> None:
        """4.12.1: AUTH 0x19 starts it, AUTH 0x18 rounds go on, AUTH 0x00 from the server ends it."""
        client = self.connected(core)
        receive(core, client, auth(RC.RE_AUTHENTICATE, b"hello"))
        assert sent(client.link) == [auth(RC.CONTINUE_AUTHENTICATION, b"who?")]
        receive(core, client, auth(RC.CONTINUE_AUTHENTICATION, b"secret"))
        assert sent(client.link) == [auth(RC.SUCCESS, b"done")]
        assert core.clients["c"] is client

    def test_reauthentication_that_fails(self, core: Core) -> None:
        """[MQTT-4.12.1-2] failed re-authentication: DISCONNECT, close (DISCONNECT has no 0x8C: 0x87)."""
        client = self.connected(core)
        receive(core, client, auth(RC.RE_AUTHENTICATE, b"hello"))
        sent(client.link)
        receive(core, client, auth(RC.CONTINUE_AUTHENTICATION, b"wrong"))
        assert disconnect_code(sent(client.link)) == RC.NOT_AUTHORIZED
        assert client.link.closed  # type: ignore[attr-defined]

    def test_reauthentication_as_someone_else(self, core: Core) -> None:
        """Re-authenticating may not change who the connection is: DISCONNECT 0x87 Not authorized."""
        client = self.connected(core)
        receive(core, client, auth(RC.RE_AUTHENTICATE, b"hello"))
        sent(client.link)
        receive(core, client, auth(RC.CONTINUE_AUTHENTICATION, b"other"))
        assert sent(client.link) == [
            Disconnect(
                reason_code=RC.NOT_AUTHORIZED, properties=Properties(reason_string="re-authentication failed")
            )
        ]
