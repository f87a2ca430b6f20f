"""Mosquitto ``password_file``: read, verify, edit and write.

One ``username:hash`` per line.  The hash is one of

* ``$7$<iterations>$<salt>$<digest>``: PBKDF2-HMAC-SHA512, what
  ``mosquitto_passwd`` writes since Mosquitto 2.0 (101 iterations by default);
* ``$6$<salt>$<digest>``: SHA-512 of the password followed by the salt, what
  Mosquitto 1.x wrote.  Accepted so old files keep working; never written.

Salt and digest are standard base64 of 12 and 64 bytes.  Mosquitto silently
drops entries it cannot decode, leaving the user unable to log in for no
visible reason; here any malformed line is a :class:`ConfigError` naming the
file and line, so the mistake surfaces at startup.  Blank lines and lines
starting with ``#`` are skipped, as Mosquitto does.  Comments are not kept
when the file is saved.

Pure: hashing and file I/O only, no asyncio, no sockets.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from ..errors import ConfigError

__all__ = [
    "DEFAULT_ITERATIONS",
    "PasswordFile",
    "hash_password",
    "validate_username",
]

#: mosquitto_passwd's PBKDF2 iteration count since 2.0.
DEFAULT_ITERATIONS: Final = 101
# Mosquitto refuses any other salt or digest length, so we do too.
SALT_LENGTH: Final = 12
DIGEST_LENGTH: Final = 64
# MQTT strings are at most 65,535 bytes, so a longer username could never log in.
_MAX_USERNAME_BYTES: Final = 65535


@dataclass(frozen=True, slots=True)
class _Hash:
    """A decoded hash; ``iterations`` is 0 for the single-round ``$6$`` scheme."""

    encoded: str
    iterations: int
    salt: bytes
    digest: bytes

    def matches(self, password: bytes) -> bool:
        if self.iterations:
            candidate = hashlib.pbkdf2_hmac("sha512", password, self.salt, self.iterations)
        else:
            candidate = hashlib.sha512(password + self.salt).digest()
        # Constant time, so response timing does not reveal how much of the digest matched.
        return hmac.compare_digest(candidate, self.digest)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, length: int, what: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not valid base64") from None
    if len(data) != length:
        raise ValueError(f"{what} is {len(data)} bytes, expected {length}")
    return data


def _parse_hash(text: str) -> _Hash:
    """Decode ``$6$...`` or ``$7$...``; ValueError says what is wrong."""
    fields = text.split("$")
    if len(fields) < 2 or fields[0] != "":
        raise ValueError("password hash must start with $6$ or $7$ (plain-text passwords are not accepted)")
    scheme = fields[1]
    if scheme == "7":
        if len(fields) != 5:
            raise ValueError("$7$ hash must be $7$iterations$salt$hash")
        iterations_text, salt_text, digest_text = fields[2:]
        # isdecimal, not int(): int() would also take " 101", "+101" or "1_01".
        if not (iterations_text.isascii() and iterations_text.isdecimal()) or int(iterations_text) < 1:
            raise ValueError(f"invalid iteration count {iterations_text!r}")
        iterations = int(iterations_text)
    elif scheme == "6":
        if len(fields) != 4:
            raise ValueError("$6$ hash must be $6$salt$hash")
        salt_text, digest_text = fields[2:]
        iterations = 0
    else:
        raise ValueError(f"unsupported hash type ${scheme}$ (expected $6$ or $7$)")
    salt = _unb64(salt_text, SALT_LENGTH, "salt")
    digest = _unb64(digest_text, DIGEST_LENGTH, "hash")
    return _Hash(text, iterations, salt, digest)


def _to_bytes(password: bytes | str) -> bytes:
    # MQTT passwords are binary; text is taken to mean its UTF-8 bytes, as mosquitto_passwd does.
    return password.encode("utf-8") if isinstance(password, str) else password


def hash_password(password: bytes | str, iterations: int = DEFAULT_ITERATIONS) -> str:
    """A new ``$7$`` hash of ``password`` with a fresh random salt."""
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    salt = os.urandom(SALT_LENGTH)
    digest = hashlib.pbkdf2_hmac("sha512", _to_bytes(password), salt, iterations)
    return f"$7${iterations}${_b64(salt)}${_b64(digest)}"


def validate_username(username: str) -> None:
    """Raise ConfigError unless ``username`` can be written to a password file.

    The rules are mosquitto_passwd's: ``:`` would end the username early, and a
    control character (a newline above all) would corrupt the line structure.
    """
    if not username:
        raise ConfigError("username", "must not be empty")
    if ":" in username:
        raise ConfigError("username", "must not contain ':'")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in username):
        raise ConfigError("username", "must not contain control characters")
    if len(username.encode("utf-8", "surrogatepass")) > _MAX_USERNAME_BYTES:
        raise ConfigError("username", f"must be at most {_MAX_USERNAME_BYTES} bytes")


# Verifying an unknown user against this costs what a wrong password costs, so
# timing does not tell a client which usernames exist.
_DUMMY: Final = _parse_hash(hash_password(b"", DEFAULT_ITERATIONS))


class PasswordFile:
    """The users of one password file, in file order."""

    def __init__(self) -> None:
        self._entries: dict[str, _Hash] = {}

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PasswordFile:
        """Read ``path``; ConfigError names the file and line of the first bad line.

        OSError (missing file, no permission) propagates unchanged.
        """
        with open(path, "rb") as f:
            raw = f.read()
        source = os.fspath(path)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(source, f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
        return cls.parse(text, source)

    @classmethod
    def parse(cls, text: str, source: str = "<password file>") -> PasswordFile:
        """Parse the contents of a password file; ``source`` names it in errors."""
        pwfile = cls()
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            where = f"{source}:{number}"
            fields = stripped.split(":")
            if len(fields) != 2:
                raise ConfigError(where, "expected username:hash")
            # Blanks around either field are trimmed, as Mosquitto trims them.
            username, encoded = fields[0].strip(), fields[1].strip()
            if not username:
                raise ConfigError(where, "empty username")
            if username in pwfile._entries:
                # Which of two entries Mosquitto would use is an accident of its hash table.
                raise ConfigError(where, f"duplicate user {username!r}")
            try:
                pwfile._entries[username] = _parse_hash(encoded)
            except ValueError as exc:
                raise ConfigError(where, f"user {username!r}: {exc}") from None
        return pwfile

    def __contains__(self, username: object) -> bool:
        return username in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def verify(self, username: str, password: bytes | str) -> bool:
        """Is ``password`` right for ``username``?  False for unknown users."""
        entry = self._entries.get(username)
        if entry is None:
            _DUMMY.matches(_to_bytes(password))
            return False
        return entry.matches(_to_bytes(password))

    def set(self, username: str, password: bytes | str, *, iterations: int = DEFAULT_ITERATIONS) -> None:
        """Add ``username`` or replace its password, with a new ``$7$`` hash."""
        validate_username(username)
        self._entries[username] = _parse_hash(hash_password(password, iterations))

    def delete(self, username: str) -> None:
        """Remove ``username``; KeyError if it is not in the file."""
        del self._entries[username]

    def dumps(self) -> str:
        """The file's text, one ``username:hash`` line per user."""
        return "".join(f"{username}:{entry.encoded}\n" for username, entry in self._entries.items())

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically with mode 0600: readers see the old file or the new, never half of one."""
        target = os.path.abspath(os.fspath(path))
        directory = os.path.dirname(target)
        # Same directory as the target, or os.replace could not be an atomic rename.
        # mkstemp creates the file 0600, so the hashes are never readable by others.
        fd, tmp = tempfile.mkstemp(prefix=".zanzara-passwd-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                f.write(self.dumps())
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    # Makes the rename itself survive a crash; POSIX only (Windows cannot open a directory).
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
