"""Bearer tokens of the admin API and their scopes: ``read`` < ``publish`` < ``admin``.

Tokens come from ``[[admin.tokens]]`` and ``admin.token_file`` (one ``SCOPE TOKEN [NAME]`` a
line, ``#`` comments; re-read on reload).  A presented token is compared with every known one in
constant time (``hmac.compare_digest``), so the time an answer takes says nothing about how much
of a token was right.  With no token configured at all the API is open, which the configuration
allows only on loopback (see ``config.AdminConfig``).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from ..config import AdminConfig, AdminScope
from ..errors import ConfigError

__all__ = ["SCOPES", "Grant", "TokenTable", "load_token_file"]

SCOPES: tuple[AdminScope, ...] = ("read", "publish", "admin")
_RANK = {scope: i for i, scope in enumerate(SCOPES)}


@dataclass(frozen=True, slots=True)
class Grant:
    """Who a request's token says it is, and what it may do."""

    scope: AdminScope
    name: str | None

    def allows(self, needed: AdminScope) -> bool:
        return _RANK[self.scope] >= _RANK[needed]


OPEN = Grant("admin", None)  # no tokens configured (loopback only)


class TokenTable:
    """The tokens in force; :meth:`reload` swaps them atomically."""

    def __init__(self, config: AdminConfig) -> None:
        self._config = config
        self._tokens: list[tuple[bytes, Grant]] = []
        self.reload()

    @property
    def open(self) -> bool:
        """No token configured: every request is allowed (the API listens on loopback only)."""
        return not self._tokens and self._config.token_file is None

    def reload(self) -> None:
        """Read the configured tokens and the token file again; on an error the old ones stay."""
        tokens = [(t.token.encode(), Grant(t.scope, t.name)) for t in self._config.tokens]
        if self._config.token_file is not None:
            tokens.extend(load_token_file(self._config.token_file))
        self._tokens = tokens

    def check(self, presented: str) -> Grant | None:
        """The grant of ``presented``; None if it is no known token."""
        given = presented.encode()
        found = None
        for token, grant in self._tokens:
            # Every token is compared, whatever matched before: no early exit to time.
            if hmac.compare_digest(token, given) and found is None:
                found = grant
        return found


def load_token_file(path: str) -> list[tuple[bytes, Grant]]:
    """Parse a token file; :class:`ConfigError` names the file and line of a bad entry."""
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError as exc:
        raise ConfigError("admin.token_file", f"cannot read {path}: {exc.strerror or exc}") from None
    tokens = []
    for number, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 2)
        if len(parts) < 2 or parts[0] not in _RANK:
            raise ConfigError(
                f"{path}:{number}", "expected 'SCOPE TOKEN [NAME]' with SCOPE read, publish or admin"
            )
        scope, token = parts[0], parts[1]
        if len(token) < 16:
            raise ConfigError(f"{path}:{number}", "a token must have at least 16 characters")
        name = parts[2].strip() if len(parts) == 3 else None
        tokens.append((token.encode(), Grant(scope, name)))
    return tokens
