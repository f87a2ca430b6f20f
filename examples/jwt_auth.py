"""Devices log in with a JSON Web Token (HS256) as their MQTT password.

    pip install 'zanzara[examples]'          # PyJWT
    export JWT_SECRET="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    python examples/jwt_auth.py
    mosquitto_pub -u device-42 -P "$(python examples/jwt_auth.py --token device-42)" -t hi -m there

The whole hook is :class:`JwtAuth`: a token is accepted when its HS256
signature, ``exp`` and ``aud`` verify and its ``sub`` is the MQTT username.
PyJWT checks the signature in constant time and never accepts ``alg: none``
when ``algorithms`` is given, the two classic JWT mistakes of hand-rolled code.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import jwt

from zanzara import Broker, Config, ConnectRequest, ReasonCode

AUDIENCE = "mqtt"


class JwtAuth:
    def __init__(self, secret: str | bytes, *, audience: str = AUDIENCE) -> None:
        self.secret = secret
        self.audience = audience

    async def authenticate(self, request: ConnectRequest) -> ReasonCode | None:
        if request.password is None:
            return None  # not a token: the next hook (or allow_anonymous) decides
        try:
            claims = jwt.decode(
                request.password.decode("utf-8", "replace"),
                self.secret,
                algorithms=["HS256"],
                audience=self.audience,
                options={"require": ["exp", "sub", "aud"]},
            )
        except jwt.InvalidTokenError:
            return ReasonCode.BAD_USER_NAME_OR_PASSWORD
        if claims["sub"] != request.client.username:
            return ReasonCode.BAD_USER_NAME_OR_PASSWORD  # a token for another device
        return ReasonCode.SUCCESS


def make_token(secret: str | bytes, username: str, ttl: int = 3600) -> str:
    """What your backend would issue to a device."""
    claims = {"sub": username, "aud": AUDIENCE, "exp": int(time.time()) + ttl}
    return jwt.encode(claims, secret, algorithm="HS256")


async def main(secret: str) -> None:
    config = Config(allow_anonymous=False)
    async with Broker(config, host="127.0.0.1", port=1883, authenticators=[JwtAuth(secret)]):
        await asyncio.Event().wait()  # serve until Ctrl-C


if __name__ == "__main__":
    SECRET = os.environ.get("JWT_SECRET", "")
    if len(SECRET) < 32:  # RFC 7518 section 3.2: an HS256 key has at least 256 bits
        sys.exit("set JWT_SECRET to at least 32 random characters")
    if sys.argv[1:2] == ["--token"]:
        print(make_token(SECRET, sys.argv[2]))
    else:
        asyncio.run(main(SECRET))
