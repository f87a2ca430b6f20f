"""SCRAM-SHA-256 (RFC 5802, RFC 7677): the server hook and the test client against the RFC's vector."""

from __future__ import annotations

import base64

import pytest

from zanzara import AuthStep, ClientInfo, ReasonCode, ScramCredentials, ScramSha256
from zanzara.auth.scram import saslprep

from scramclient import ScramClient

# RFC 7677 section 3: user "user", password "pencil".
CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

ANYONE = ClientInfo(client_id="c1")


def vector_server() -> ScramSha256:
    creds = ScramCredentials.from_password("pencil", salt=SALT, iterations=4096)
    return ScramSha256({"user": creds}, server_nonce=lambda: SERVER_NONCE)


def test_the_test_client_reproduces_rfc7677():
    """RFC 7677 section 3: the client's messages for user/pencil, and the server signature it expects."""
    client = ScramClient("user", "pencil", nonce=CLIENT_NONCE)
    assert client.client_first() == CLIENT_FIRST
    assert client.client_final(SERVER_FIRST) == CLIENT_FINAL
    assert client.verify_server_final(SERVER_FINAL)


async def test_the_server_reproduces_rfc7677():
    """RFC 7677 section 3: server-first-message and server-final-message for the vector's client."""
    server = vector_server()
    first = await server.start(ANYONE, CLIENT_FIRST)
    assert first.reason_code is ReasonCode.CONTINUE_AUTHENTICATION
    assert first.data == SERVER_FIRST
    final = await server.continue_(first, CLIENT_FINAL)
    assert final.reason_code is ReasonCode.SUCCESS
    assert final.data == SERVER_FINAL
    assert final.username == "user"


async def test_a_tampered_proof_fails():
    """RFC 5802 section 3: ClientKey recovered from the proof must hash to StoredKey."""
    server = vector_server()
    first = await server.start(ANYONE, CLIENT_FIRST)
    tampered = CLIENT_FINAL.replace(b"p=dHzb", b"p=dHzc")
    assert (await server.continue_(first, tampered)).reason_code is ReasonCode.BAD_USER_NAME_OR_PASSWORD


@pytest.mark.parametrize(
    "final",
    [
        CLIENT_FINAL.replace(b"k0,", b"k1,"),  # RFC 5802 section 5.1: the nonce must be the combined one
        CLIENT_FINAL.replace(b"c=biws", b"c=eSws"),  # c= is base64 of the gs2 header sent first
        b"c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        b"",
    ],
)
async def test_malformed_client_final_is_not_authorized(final):
    server = vector_server()
    first = await server.start(ANYONE, CLIENT_FIRST)
    assert (await server.continue_(first, final)).reason_code is ReasonCode.NOT_AUTHORIZED


@pytest.mark.parametrize(
    "client_first",
    [
        b"p=tls-unique,,n=user,r=abc",  # channel binding (SCRAM-SHA-256-PLUS) is not offered
        b"n,,m=ext,n=user,r=abc",  # RFC 5802 section 5.1: unknown mandatory extension
        b"n,,n=us=3Fer,r=abc",  # '=' only as =2C or =3D
        b"n,a=admin,n=user,r=abc",  # an authorization identity other than the user
        b"n,,n=user,r=ab\x7fc",  # RFC 5802 section 7: a nonce is printable ASCII
        b"n,,n=user",
        None,
    ],
)
async def test_malformed_client_first_is_not_authorized(client_first):
    step = await vector_server().start(ANYONE, client_first)
    assert step.reason_code is ReasonCode.NOT_AUTHORIZED


async def test_escaped_user_name():
    """RFC 5802 section 5.1: ',' and '=' in a user name travel as '=2C' and '=3D'."""
    server = ScramSha256.from_passwords({"a,b=c": "pw"})
    client = ScramClient("a,b=c", "pw")
    first = await server.start(ANYONE, client.client_first())
    final = await server.continue_(first, client.client_final(first.data or b""))
    assert final.reason_code is ReasonCode.SUCCESS and final.username == "a,b=c"
    assert client.verify_server_final(final.data or b"")


def test_credentials_round_trip_rfc5803_text():
    """RFC 5803 section 3: SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>."""
    creds = ScramCredentials.from_password("pencil", salt=SALT)
    text = str(creds)
    assert text.startswith("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$")
    assert ScramCredentials.parse(text) == creds
    for bad in ("SCRAM-SHA-1$4096:c2FsdA==$a:b", "SCRAM-SHA-256$x:c2FsdA==$a:b", "$7$..."):
        with pytest.raises(ValueError):
            ScramCredentials.parse(bad)


def test_passwords_are_not_kept_and_salts_are_random():
    once = ScramSha256.from_passwords({"alice": "wonderland"}).users["alice"]
    twice = ScramSha256.from_passwords({"alice": "wonderland"}).users["alice"]
    assert "wonderland" not in repr(once)
    assert once.salt != twice.salt and once.stored_key != twice.stored_key


@pytest.mark.parametrize(
    ("given", "prepared"),
    [("I\u00adX", "IX"), ("user", "user"), ("USER", "USER"), ("\u00aa", "a"), ("\u2168", "IX")],
)
def test_saslprep_rfc4013_examples(given, prepared):
    """RFC 4013 section 3, the examples table."""
    assert saslprep(given) == prepared


def test_saslprep_prohibits_control_characters():
    """RFC 4013 section 3: <U+0007> is a prohibited character."""
    with pytest.raises(ValueError):
        saslprep("\u0007")


def test_steps_validate_their_reason_code():
    """[MQTT-3.15.2-1] a step answers with Success, Continue or a failure code, nothing else."""
    assert AuthStep.challenge(b"x").reason_code is ReasonCode.CONTINUE_AUTHENTICATION
    assert AuthStep(reason_code=0x87).reason_code is ReasonCode.NOT_AUTHORIZED  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        AuthStep(reason_code=ReasonCode.RE_AUTHENTICATE)
