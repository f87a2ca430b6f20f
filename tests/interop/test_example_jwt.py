"""examples/jwt_auth.py: its hook admits devices by HS256 token, through a real broker and paho."""

from __future__ import annotations

import base64
import importlib.util
import json
import time
from pathlib import Path
from types import ModuleType

import jwt
import pytest

from zanzara.config import Config, StorageConfig

from clients import PahoClient

SECRET = "a-test-secret-of-at-least-32-bytes"  # RFC 7518 section 3.2: HS256 keys >= 256 bits
OTHER_SECRET = "someone-else-secret-of-32-bytes-or-more"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "jwt_auth.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("jwt_auth_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = load_example()


@pytest.fixture
def jwt_broker(make_broker):
    config = Config(storage=StorageConfig(backend="memory"), allow_anonymous=False)
    return make_broker(config, setup=lambda b: b.add_authenticator(example.JwtAuth(SECRET)))


def b64url(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims(**over: object) -> dict[str, object]:
    return {"sub": "device-42", "aud": "mqtt", "exp": int(time.time()) + 600, **over}


def test_a_valid_token_admits_the_device(jwt_broker):
    c = PahoClient(jwt_broker.port, username="device-42", password=example.make_token(SECRET, "device-42"))
    assert c.reason_code == 0
    c.disconnect()


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode(claims(exp=int(time.time()) - 60), SECRET, algorithm="HS256"),  # expired
        jwt.encode(claims(), OTHER_SECRET, algorithm="HS256"),  # signed by someone else
        jwt.encode(claims(sub="device-7"), SECRET, algorithm="HS256"),  # another device's token
        jwt.encode(claims(aud="web"), SECRET, algorithm="HS256"),  # meant for another service
        jwt.encode({"sub": "device-42", "aud": "mqtt"}, SECRET, algorithm="HS256"),  # never expires
        f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(claims())}.",  # unsigned
        "not a token",
    ],
)
def test_bad_tokens_get_0x86(jwt_broker, token):
    """A refused token is a bad user name or password (v5 CONNACK 0x86)."""
    c = PahoClient(jwt_broker.port, username="device-42", password=token)
    assert c.reason_code == 0x86
    c.client.loop_stop()


def test_no_token_is_left_to_allow_anonymous(jwt_broker):
    c = PahoClient(jwt_broker.port, username="device-42")
    assert c.reason_code == 0x87  # allow_anonymous = false: not authorized
    c.client.loop_stop()
