"""MQTT 5 enhanced authentication (sections 4.12 and 3.15) with SCRAM-SHA-256, against paho-mqtt.

paho-mqtt 2.x sends the CONNECT (Authentication Method and Data) and decodes
CONNACK and DISCONNECT itself; :class:`AuthCapableClient` adds the AUTH packet,
and :class:`ScramClient` computes the SASL messages from RFC 5802 on its own.
Bytes-exact protocol errors use the raw client.
"""

from __future__ import annotations

import hashlib
import hmac
import queue
import secrets

import pytest

from zanzara import AuthStep, ClientInfo, EnhancedAuthenticator, ReasonCode, ScramSha256
from zanzara.config import Config, StorageConfig
from zanzara.mqtt.packets import Auth, ConnAck, Publish
from zanzara.mqtt.properties import Properties

from clients import TIMEOUT, AuthCapableClient, PahoClient, RawClient, props
from scramclient import ScramClient

SCRAM = "SCRAM-SHA-256"
USERS = {"alice": "wonderland", "bob": "builder"}


class AuthPaho(PahoClient):
    client_class = AuthCapableClient

    def connect(self) -> object:
        # paho reconnects on its own after a disconnect, replaying the old CONNECT; a test that
        # expects to be disconnected must not see a second conversation behind its back.
        self.client.reconnect_delay_set(min_delay=60, max_delay=60)
        return super().connect()

    @property
    def auth_client(self) -> AuthCapableClient:
        assert isinstance(self.client, AuthCapableClient)
        return self.client

    def next_auth(self) -> tuple[int, object]:
        try:
            return self.auth_client.auth_received.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError("expected an AUTH packet from the broker") from None


class ScramPaho(AuthPaho):
    """A paho client that logs in with SCRAM-SHA-256 and answers the broker's AUTH 0x18."""

    def __init__(self, port: int, user: str, password: str, *, method: str = SCRAM, **kw: object) -> None:
        self.method = method
        self.scram = ScramClient(user, password)
        first = self.scram.client_first()
        connect_props = props("CONNECT", AuthenticationMethod=method, AuthenticationData=first)
        connect = kw.pop("connect", True)
        super().__init__(port, connect_properties=connect_props, connect=False, **kw)  # type: ignore[arg-type]
        self.auth_client.on_auth = self._answer
        if connect:
            self.connect()

    def _answer(self, code: int, properties: object) -> tuple[int, object] | None:
        if code != ReasonCode.CONTINUE_AUTHENTICATION:
            return None
        final = self.scram.client_final(properties.AuthenticationData)  # type: ignore[attr-defined]
        return code, props("AUTH", AuthenticationMethod=self.method, AuthenticationData=final)

    def reauthenticate(self, password: str, user: str | None = None) -> None:
        self.scram = ScramClient(user or self.scram.username, password)
        self.auth_client.send_auth(
            ReasonCode.RE_AUTHENTICATE,
            props("AUTH", AuthenticationMethod=self.method, AuthenticationData=self.scram.client_first()),
        )


@pytest.fixture
def scram_broker(make_broker):
    return make_broker(setup=lambda b: b.add_authenticator(ScramSha256.from_passwords(USERS)))


def roundtrip(client: PahoClient, topic: str) -> None:
    client.subscribe(topic, qos=1)
    client.publish(topic, b"still here", qos=1)
    assert client.expect().payload == b"still here"


# -- 4.12: authentication during CONNECT -----------------------------------------------------------


def test_scram_exchange_admits_the_client(scram_broker):
    """[MQTT-4.12.0-2] the server asks with AUTH 0x18, [MQTT-4.12.0-3] the client answers AUTH 0x18,
    [MQTT-4.12.0-5] AUTH and the successful CONNACK carry the CONNECT's Authentication Method;
    the CONNACK's data is the server-final-message whose signature the client checks (RFC 5802 section 3)."""
    c = ScramPaho(scram_broker.port, "alice", "wonderland")
    assert c.reason_code == ReasonCode.SUCCESS
    code, auth_props = c.next_auth()
    assert code == ReasonCode.CONTINUE_AUTHENTICATION
    assert auth_props.AuthenticationMethod == SCRAM  # type: ignore[attr-defined]
    connack_props = c.connack[2]  # type: ignore[index]
    assert connack_props.AuthenticationMethod == SCRAM
    assert c.scram.verify_server_final(connack_props.AuthenticationData)
    # The proven identity is the one hooks and ACLs see.
    assert scram_broker.call(lambda: scram_broker.core.clients[c.client_id].info.username) == "alice"
    roundtrip(c, "scram/ok")
    c.disconnect()


@pytest.mark.parametrize(("user", "password"), [("alice", "wrong"), ("mallory", "wonderland")])
def test_failed_proof_is_refused(scram_broker, user, password):
    """[MQTT-4.12.0-4] the server rejects the authentication with a CONNACK >= 0x80 and closes;
    a wrong password and an unknown user get the same answer (0x86)."""
    c = ScramPaho(scram_broker.port, user, password)
    assert c.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD
    assert c.next_auth()[0] == ReasonCode.CONTINUE_AUTHENTICATION
    c.expect_disconnect()
    assert scram_broker.call(lambda: c.client_id not in scram_broker.core.clients)
    c.client.loop_stop()


def test_unknown_user_is_not_revealed_by_the_salt(scram_broker):
    """An unknown user gets a made-up salt that stays the same from one attempt to the next, like
    a real user's, so the server-first-message does not tell who exists."""
    salts = []
    for _ in range(2):
        c = ScramPaho(scram_broker.port, "mallory", "guess")
        _code, first = c.next_auth()
        fields = dict(kv.split("=", 1) for kv in first.AuthenticationData.decode().split(","))  # type: ignore[attr-defined]
        salts.append(fields["s"])
        assert c.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD
        c.client.loop_stop()
    assert salts[0] == salts[1]


def test_unsupported_method_gets_0x8c(scram_broker):
    """[MQTT-4.12.0-1] a method the server does not support: CONNACK 0x8C, then close."""
    c = PahoClient(
        scram_broker.port,
        connect_properties=props("CONNECT", AuthenticationMethod="GS2-KRB5", AuthenticationData=b"x"),
    )
    assert c.reason_code == ReasonCode.BAD_AUTHENTICATION_METHOD
    c.expect_disconnect()
    c.client.loop_stop()


def test_connect_user_name_must_be_the_scram_user(scram_broker):
    """A CONNECT User Name that differs from the SCRAM user is refused (0x86), not trusted."""
    c = ScramPaho(scram_broker.port, "alice", "wonderland", username="bob", connect=False)
    c.connect()
    assert c.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD
    c.client.loop_stop()


def test_password_hooks_do_not_see_enhanced_connects(make_broker):
    """A CONNECT with a method is decided by that method alone (the password chain is not asked)."""
    asked: list[str] = []

    class Refuser:
        async def authenticate(self, request: object) -> ReasonCode:
            asked.append("yes")
            return ReasonCode.NOT_AUTHORIZED

    def setup(b):
        b.add_authenticator(Refuser())
        b.add_authenticator(ScramSha256.from_passwords(USERS))

    broker = make_broker(setup=setup)
    assert ScramPaho(broker.port, "bob", "builder").reason_code == ReasonCode.SUCCESS
    plain = PahoClient(broker.port, username="bob", password="builder")
    assert plain.reason_code == ReasonCode.NOT_AUTHORIZED
    assert asked == ["yes"]


# -- 4.12 / 3.15: AUTH packets the client may not send ------------------------------------------


def test_auth_without_a_method_is_a_protocol_error(scram_broker):
    """[MQTT-4.12.0-7] a client that sent no Authentication Method must not send AUTH: DISCONNECT 0x82."""
    c = AuthPaho(scram_broker.port, connect=False)
    c.connect()
    assert c.reason_code == ReasonCode.SUCCESS
    c.auth_client.send_auth(
        ReasonCode.RE_AUTHENTICATE,
        props("AUTH", AuthenticationMethod=SCRAM, AuthenticationData=ScramClient("al", "x").client_first()),
    )
    rc, _ = c.expect_disconnect()
    assert rc.value == ReasonCode.PROTOCOL_ERROR
    c.client.loop_stop()


def _raw_scram_start(port: int) -> tuple[RawClient, Auth]:
    raw = RawClient(port)
    first = ScramClient("alice", "wonderland").client_first()
    auth = raw.connect(properties=Properties(authentication_method=SCRAM, authentication_data=first))
    assert isinstance(auth, Auth) and auth.reason_code == ReasonCode.CONTINUE_AUTHENTICATION
    return raw, auth


def test_publish_before_authentication_completes_is_a_protocol_error(scram_broker):
    """[MQTT-3.1.2-30] after a CONNECT with a method, only AUTH or DISCONNECT until CONNACK."""
    raw, _ = _raw_scram_start(scram_broker.port)
    raw.send(Publish(topic="too/early", payload=b"x"))
    [connack] = raw.expect_closed()
    assert isinstance(connack, ConnAck) and connack.reason_code == ReasonCode.PROTOCOL_ERROR


@pytest.mark.parametrize(
    ("code", "method"),
    [
        (ReasonCode.RE_AUTHENTICATE, SCRAM),  # [MQTT-4.12.1-1] re-authentication only after CONNACK
        (ReasonCode.SUCCESS, SCRAM),  # 3.15.2.1: AUTH 0x00 is sent by the server only
        (ReasonCode.CONTINUE_AUTHENTICATION, "PLAIN"),  # [MQTT-4.12.0-5] the CONNECT's method in every AUTH
    ],
)
def test_wrong_auth_during_connect_gets_connack_0x82(scram_broker, code, method):
    raw, _ = _raw_scram_start(scram_broker.port)
    raw.send(Auth(reason_code=code, properties=Properties(authentication_method=method)))
    [connack] = raw.expect_closed()
    assert isinstance(connack, ConnAck) and connack.reason_code == ReasonCode.PROTOCOL_ERROR


def test_unsolicited_auth_continue_after_connack_is_a_protocol_error(scram_broker):
    """[MQTT-4.12.0-3] a client sends AUTH 0x18 only in answer to the server's AUTH 0x18."""
    c = ScramPaho(scram_broker.port, "alice", "wonderland")
    c.auth_client.send_auth(ReasonCode.CONTINUE_AUTHENTICATION, props("AUTH", AuthenticationMethod=SCRAM))
    rc, _ = c.expect_disconnect()
    assert rc.value == ReasonCode.PROTOCOL_ERROR
    c.client.loop_stop()


# -- 4.12.1: re-authentication --------------------------------------------------------------------


def test_reauthentication_succeeds_and_the_connection_goes_on(scram_broker):
    """[MQTT-4.12.1-1] AUTH 0x19 with the same method starts it; the server answers AUTH 0x18,
    then AUTH 0x00 with the server-final-message; packets flow on the same connection."""
    c = ScramPaho(scram_broker.port, "alice", "wonderland")
    c.next_auth()  # the CONNECT's round
    c.reauthenticate("wonderland")
    code, challenge = c.next_auth()
    assert code == ReasonCode.CONTINUE_AUTHENTICATION
    assert challenge.AuthenticationMethod == SCRAM  # type: ignore[attr-defined]
    code, final = c.next_auth()
    assert code == ReasonCode.SUCCESS
    assert final.AuthenticationMethod == SCRAM  # type: ignore[attr-defined]
    assert c.scram.verify_server_final(final.AuthenticationData)  # type: ignore[attr-defined]
    roundtrip(c, "scram/reauth")
    c.disconnect()


@pytest.mark.parametrize(("user", "password"), [("alice", "wrong"), ("bob", "builder")])
def test_failed_reauthentication_disconnects(scram_broker, user, password):
    """[MQTT-4.12.1-2] a failed re-authentication: DISCONNECT with a reason code, then close.
    SCRAM's 0x86 is not a DISCONNECT code (table 3.14.2.1), so it is 0x87; proving another
    user's password counts as failed (the connection keeps its identity)."""
    c = ScramPaho(scram_broker.port, "alice", "wonderland")
    c.next_auth()
    c.reauthenticate(password, user)
    rc, _ = c.expect_disconnect()
    assert rc.value == ReasonCode.NOT_AUTHORIZED
    c.client.loop_stop()


# -- the hook interface: another method plugs in the same way ---------------------------------------


class SharedSecretChallenge:
    """A toy method: the server sends a random challenge, the client answers HMAC(secret, challenge)."""

    method = "X-HMAC-CHALLENGE"

    def __init__(self, secrets_by_user: dict[str, bytes]) -> None:
        self.secrets = secrets_by_user

    async def start(self, client: ClientInfo, data: bytes | None) -> AuthStep:
        if client.username not in self.secrets:
            return AuthStep.failure(ReasonCode.NOT_AUTHORIZED)
        challenge = secrets.token_bytes(16)
        return AuthStep.challenge(challenge, state=(client.username, challenge))

    async def continue_(self, step: AuthStep, data: bytes | None) -> AuthStep:
        user, challenge = step.state  # type: ignore[misc]
        expected = hmac.new(self.secrets[user], challenge, hashlib.sha256).digest()
        if data is None or not hmac.compare_digest(data, expected):
            return AuthStep.failure(ReasonCode.NOT_AUTHORIZED)
        return AuthStep.success(username=user)


def test_a_second_method_plugs_in_beside_scram(make_broker):
    """Two EnhancedAuthenticators side by side; each CONNECT goes to the one its method names."""
    hook = SharedSecretChallenge({"sensor-1": b"k3y"})
    assert isinstance(hook, EnhancedAuthenticator)

    def setup(b):
        b.add_authenticator(hook)
        b.add_authenticator(ScramSha256.from_passwords(USERS))

    broker = make_broker(setup=setup)
    for key, expected in ((b"k3y", ReasonCode.SUCCESS), (b"nope", ReasonCode.NOT_AUTHORIZED)):
        c = AuthPaho(
            broker.port,
            username="sensor-1",
            connect_properties=props("CONNECT", AuthenticationMethod=hook.method),
            connect=False,
        )

        def answer(code: int, challenge: object, key: bytes = key) -> tuple[int, object]:
            proof = hmac.new(key, challenge.AuthenticationData, hashlib.sha256).digest()  # type: ignore[attr-defined]
            return code, props("AUTH", AuthenticationMethod=hook.method, AuthenticationData=proof)

        c.auth_client.on_auth = answer
        c.connect()
        assert c.reason_code == expected
        c.client.loop_stop()
    assert ScramPaho(broker.port, "bob", "builder").reason_code == ReasonCode.SUCCESS


def test_auth_data_without_a_method_is_a_protocol_error(scram_broker):
    """3.1.2.11.10: Authentication Data without an Authentication Method is a Protocol Error."""
    raw = RawClient(scram_broker.port)
    connack = raw.connect(properties=Properties(authentication_data=b"n,,n=alice,r=abc"))
    assert isinstance(connack, ConnAck) and connack.reason_code == ReasonCode.PROTOCOL_ERROR


def test_acl_judges_the_user_scram_proved(make_broker, tmp_path):
    """The acl_file's user rules apply to the SCRAM user, for subscribing and for what is delivered."""
    acl = tmp_path / "acl"
    acl.write_text("user alice\ntopic read a/#\n")
    config = Config(storage=StorageConfig(backend="memory"), acl_file=str(acl))
    broker = make_broker(config, setup=lambda b: b.add_authenticator(ScramSha256.from_passwords(USERS)))
    alice = ScramPaho(broker.port, "alice", "wonderland")
    bob = ScramPaho(broker.port, "bob", "builder")
    assert alice.subscribe("a/#", qos=1) == [1]
    assert bob.subscribe("a/#", qos=1) == [ReasonCode.NOT_AUTHORIZED]
    broker.run(broker.broker.publish("a/news", b"for alice", qos=1))
    assert alice.expect().payload == b"for alice"
    alice.disconnect()
    bob.disconnect()
