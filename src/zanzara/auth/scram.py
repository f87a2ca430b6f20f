"""SCRAM-SHA-256 (RFC 5802, RFC 7677) as an MQTT 5 enhanced authentication method.

The SASL messages travel in the Authentication Data of the MQTT packets
(MQTT 5 section 4.12, Authentication Method ``SCRAM-SHA-256``)::

    CONNECT  client-first-message   n,,n=alice,r=<client nonce>
    AUTH 18  server-first-message   r=<client nonce><server nonce>,s=<salt>,i=4096
    AUTH 18  client-final-message   c=biws,r=<nonce>,p=<ClientProof>
    CONNACK  server-final-message   v=<ServerSignature>     (0x00; 0x86 on a wrong proof)

The broker never sees the password: it keeps :class:`ScramCredentials`
(salt, iteration count, StoredKey, ServerKey), derived once from a plaintext
password with :meth:`ScramCredentials.from_password`, or read from the RFC 5803
text form ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`` (what
PostgreSQL stores in ``pg_authid``).

Mosquitto's ``$7$`` password file cannot serve SCRAM: it holds
PBKDF2-HMAC-SHA512 hashes, and SCRAM-SHA-256 needs PBKDF2-HMAC-SHA256 of the
password itself; neither can be computed from the other without the
plaintext.  A password file user needs SCRAM credentials made from their
password.

Not supported: channel binding (``SCRAM-SHA-256-PLUS``; a ``p=`` client is
refused), authorization identities other than the user itself, and mandatory
extensions (``m=``), all as RFC 5802 allows.  Usernames are compared as sent
(after ``=2C``/``=3D`` unescaping); passwords are prepared with SASLprep
(RFC 4013) without its bidirectional-text check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import stringprep
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..hooks import AuthStep, ClientInfo
from ..mqtt.enums import ReasonCode

__all__ = ["ScramCredentials", "ScramSha256", "saslprep"]

# RFC 7677 section 4: the iteration count SHOULD be at least 4096.
DEFAULT_ITERATIONS = 4096
_HASH = "sha256"
_KEY_SIZE = 32


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.digest(key, message, _HASH)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("not base64") from None


def saslprep(text: str) -> str:
    """RFC 4013 SASLprep (stored strings), without the bidirectional check of its section 6."""
    mapped = "".join(" " if stringprep.in_table_c12(c) else c for c in text if not stringprep.in_table_b1(c))
    normalized = unicodedata.normalize("NFKC", mapped)
    for c in normalized:
        if c != " " and (
            stringprep.in_table_c12(c)
            or stringprep.in_table_c21_c22(c)
            or stringprep.in_table_c3(c)
            or stringprep.in_table_c4(c)
            or stringprep.in_table_c5(c)
            or stringprep.in_table_c6(c)
            or stringprep.in_table_c7(c)
            or stringprep.in_table_c8(c)
            or stringprep.in_table_c9(c)
            or stringprep.in_table_a1(c)
        ):
            raise ValueError(f"character U+{ord(c):04X} is not allowed in a SCRAM password")
    return normalized


@dataclass(frozen=True, slots=True)
class ScramCredentials:
    """What the server keeps of one user's password (RFC 5802 section 3)."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    PREFIX = "SCRAM-SHA-256$"

    @classmethod
    def from_password(
        cls, password: str, *, salt: bytes | None = None, iterations: int = DEFAULT_ITERATIONS
    ) -> ScramCredentials:
        if iterations < 1:
            raise ValueError("iterations must be positive")
        salt = secrets.token_bytes(16) if salt is None else salt
        salted = hashlib.pbkdf2_hmac(_HASH, saslprep(password).encode("utf-8"), salt, iterations)
        client_key = _hmac(salted, b"Client Key")
        return cls(
            salt=salt,
            iterations=iterations,
            stored_key=hashlib.sha256(client_key).digest(),
            server_key=_hmac(salted, b"Server Key"),
        )

    @classmethod
    def parse(cls, text: str) -> ScramCredentials:
        """Read the RFC 5803 form ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``."""
        try:
            scheme, params, keys = text.strip().split("$")
            iterations, salt = params.split(":")
            stored_key, server_key = keys.split(":")
            if scheme + "$" != cls.PREFIX:
                raise ValueError(f"scheme {scheme!r}")
            creds = cls(
                salt=_unb64(salt),
                iterations=int(iterations),
                stored_key=_unb64(stored_key),
                server_key=_unb64(server_key),
            )
        except ValueError as exc:
            raise ValueError(f"not SCRAM-SHA-256 credentials: {exc}") from None
        if creds.iterations < 1 or len(creds.stored_key) != _KEY_SIZE or len(creds.server_key) != _KEY_SIZE:
            raise ValueError("not SCRAM-SHA-256 credentials: bad iteration count or key size")
        return creds

    def __str__(self) -> str:
        return (
            f"{self.PREFIX}{self.iterations}:{_b64(self.salt)}"
            f"${_b64(self.stored_key)}:{_b64(self.server_key)}"
        )


@dataclass(frozen=True, slots=True)
class _ClientFirst:
    gs2_header: str
    bare: str
    username: str
    nonce: str


@dataclass(frozen=True, slots=True)
class _Conversation:
    """What the second round needs from the first (kept in AuthStep.state)."""

    first: _ClientFirst
    server_first: str
    nonce: str
    credentials: ScramCredentials | None


def _new_nonce() -> str:
    return secrets.token_urlsafe(24)  # printable, no ',' (RFC 5802 section 7, "nonce")


class ScramSha256:
    """The ``SCRAM-SHA-256`` method, checked against ``users`` (or an overridden :meth:`credentials`)."""

    method = "SCRAM-SHA-256"

    def __init__(
        self,
        users: Mapping[str, ScramCredentials] | None = None,
        *,
        iterations: int = DEFAULT_ITERATIONS,
        server_nonce: Callable[[], str] = _new_nonce,
    ) -> None:
        self.users: dict[str, ScramCredentials] = dict(users or {})
        self.iterations = iterations
        self._server_nonce = server_nonce
        # Unknown users get a made-up but stable salt, so the answer does not tell who exists.
        self._decoy_key = secrets.token_bytes(32)

    @classmethod
    def from_passwords(
        cls, passwords: Mapping[str, str], *, iterations: int = DEFAULT_ITERATIONS
    ) -> ScramSha256:
        """Users from plaintext passwords (derived here; the passwords are not kept)."""
        hook = cls(iterations=iterations)
        for username, password in passwords.items():
            hook.add_user(username, password)
        return hook

    def add_user(self, username: str, password: str) -> ScramCredentials:
        creds = self.users[username] = ScramCredentials.from_password(password, iterations=self.iterations)
        return creds

    async def credentials(self, username: str) -> ScramCredentials | None:
        """The stored credentials of ``username``; override to look them up elsewhere."""
        return self.users.get(username)

    async def start(self, client: ClientInfo, data: bytes | None) -> AuthStep:
        try:
            first = _parse_client_first(data)
        except ValueError:
            return AuthStep.failure(ReasonCode.NOT_AUTHORIZED)
        if client.username is not None and client.username != first.username:
            # The CONNECT's User Name would otherwise claim an identity SCRAM did not prove.
            return AuthStep.failure(ReasonCode.BAD_USER_NAME_OR_PASSWORD)
        creds = await self.credentials(first.username)
        if creds is None:
            salt = _hmac(self._decoy_key, first.username.encode("utf-8"))[:16]
            iterations = self.iterations
        else:
            salt, iterations = creds.salt, creds.iterations
        nonce = first.nonce + self._server_nonce()
        server_first = f"r={nonce},s={_b64(salt)},i={iterations}"
        state = _Conversation(first=first, server_first=server_first, nonce=nonce, credentials=creds)
        return AuthStep.challenge(server_first.encode("ascii"), state)

    async def continue_(self, step: AuthStep, data: bytes | None) -> AuthStep:
        state = step.state
        if not isinstance(state, _Conversation):
            return AuthStep.failure(ReasonCode.NOT_AUTHORIZED)
        try:
            without_proof, proof = _parse_client_final(data, state)
        except ValueError:
            return AuthStep.failure(ReasonCode.NOT_AUTHORIZED)
        creds = state.credentials
        auth_message = f"{state.first.bare},{state.server_first},{without_proof}".encode()
        if creds is None or not _proof_holds(creds, auth_message, proof):
            return AuthStep.failure(ReasonCode.BAD_USER_NAME_OR_PASSWORD)
        server_signature = _hmac(creds.server_key, auth_message)
        return AuthStep.success(f"v={_b64(server_signature)}".encode("ascii"), username=state.first.username)


def _proof_holds(creds: ScramCredentials, auth_message: bytes, proof: bytes) -> bool:
    # RFC 5802 section 3: ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); H(ClientKey) = StoredKey.
    client_signature = _hmac(creds.stored_key, auth_message)
    client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
    return hmac.compare_digest(hashlib.sha256(client_key).digest(), creds.stored_key)


def _text(data: bytes | None) -> str:
    if not data:
        raise ValueError("no authentication data")
    return data.decode("utf-8")  # UnicodeDecodeError is a ValueError


def _unescape(saslname: str) -> str:
    # RFC 5802 section 5.1: ',' and '=' travel as '=2C' and '=3D'; any other '=' is an error.
    parts = saslname.split("=")
    out = [parts[0]]
    for part in parts[1:]:
        code, rest = part[:2], part[2:]
        if code == "2C":
            out.append("," + rest)
        elif code == "3D":
            out.append("=" + rest)
        else:
            raise ValueError("bad escape in a user name")
    name = "".join(out)
    if not name:
        raise ValueError("empty user name")
    return name


def _valid_nonce(nonce: str) -> bool:
    # RFC 5802 section 7: printable ASCII except ','.
    return bool(nonce) and all(0x21 <= ord(c) <= 0x7E and c != "," for c in nonce)


def _parse_client_first(data: bytes | None) -> _ClientFirst:
    text = _text(data)
    cbind, authzid, bare = [*text.split(",", 2), "", ""][:3]
    if cbind not in ("n", "y"):
        raise ValueError("channel binding is not offered")  # 'p=...' asks for SCRAM-SHA-256-PLUS
    fields = bare.split(",")
    if len(fields) < 2 or not fields[0].startswith("n=") or not fields[1].startswith("r="):
        raise ValueError("not a client-first-message")  # includes 'm=': no mandatory extensions
    username = _unescape(fields[0][2:])
    if authzid and (not authzid.startswith("a=") or _unescape(authzid[2:]) != username):
        raise ValueError("authorization identity differs from the user")
    nonce = fields[1][2:]
    if not _valid_nonce(nonce):
        raise ValueError("bad client nonce")
    return _ClientFirst(gs2_header=f"{cbind},{authzid},", bare=bare, username=username, nonce=nonce)


def _parse_client_final(data: bytes | None, state: _Conversation) -> tuple[str, bytes]:
    text = _text(data)
    without_proof, sep, proof = text.rpartition(",p=")
    fields = without_proof.split(",")
    if not sep or len(fields) < 2 or not fields[0].startswith("c=") or not fields[1].startswith("r="):
        raise ValueError("not a client-final-message")
    # Without channel binding, c= is the base64 of the gs2 header the client sent first.
    if fields[0][2:] != _b64(state.first.gs2_header.encode("utf-8")):
        raise ValueError("channel binding differs")
    if not hmac.compare_digest(fields[1][2:].encode(), state.nonce.encode()):
        raise ValueError("nonce differs")
    proof_bytes = _unb64(proof)
    if len(proof_bytes) != _KEY_SIZE:
        raise ValueError("bad proof size")
    return without_proof, proof_bytes
