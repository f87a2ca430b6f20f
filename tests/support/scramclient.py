"""A SCRAM-SHA-256 client (RFC 5802, RFC 7677) written from the RFCs, independent of zanzara's server.

Plain hashlib/hmac: the tests check the broker against this client, and this
client against the RFC 7677 test vector.  ASCII passwords only (no SASLprep).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


def _h(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


class ScramClient:
    def __init__(self, username: str, password: str, nonce: str | None = None) -> None:
        self.username = username
        self.password = password
        self.nonce = nonce or secrets.token_hex(12)
        self.server_signature: bytes | None = None

    @property
    def client_first_bare(self) -> str:
        name = self.username.replace("=", "=3D").replace(",", "=2C")
        return f"n={name},r={self.nonce}"

    def client_first(self) -> bytes:
        return ("n,," + self.client_first_bare).encode()

    def client_final(self, server_first: bytes) -> bytes:
        text = server_first.decode()
        attrs = dict(item.split("=", 1) for item in text.split(","))
        nonce, salt, iterations = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
        assert nonce.startswith(self.nonce), "the server must extend our nonce (RFC 5802 section 5.1)"
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), salt, iterations)
        client_key = _h(salted, b"Client Key")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c={base64.b64encode(b'n,,').decode()},r={nonce}"
        auth_message = f"{self.client_first_bare},{text},{without_proof}".encode()
        proof = bytes(a ^ b for a, b in zip(client_key, _h(stored_key, auth_message), strict=True))
        self.server_signature = _h(_h(salted, b"Server Key"), auth_message)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify_server_final(self, server_final: bytes) -> bool:
        assert self.server_signature is not None
        return server_final == b"v=" + base64.b64encode(self.server_signature)
