"""TLS for listeners: the server ``ssl.SSLContext`` and the client's certificate identity.

One function turns a listener's TLS keys (named after Mosquitto's: certfile,
keyfile, cafile, tls_version, ciphers, require_certificate) into an
``ssl.SSLContext``; TCP and WebSocket listeners hand it to the event loop, so
the handshake happens before the MQTT connection exists.  Files are read here,
at start, and a problem is a :class:`~zanzara.errors.ConfigError` naming the
key (``listeners.2.certfile: cannot read ...``), like a mistake in the file.

This module knows configuration and ``ssl``; it must not import the broker.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from ..config import ListenerConfig
from ..errors import ConfigError

__all__ = ["peer_common_name", "server_context"]

logger = logging.getLogger(__name__)

_MINIMUM_VERSION = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def server_context(listener: ListenerConfig, field: str) -> ssl.SSLContext:
    """The server context for ``listener`` (whose ``certfile`` is set).

    ``field`` is the listener's dotted path (``listeners.2``) for error messages.
    Client certificates: ``require_certificate`` refuses clients without one;
    otherwise, with a ``cafile``, a certificate is asked for and verified when
    the client presents one (needed by ``use_identity_as_username``).
    """
    if listener.certfile is None or listener.keyfile is None:
        raise ConfigError(f"{field}.certfile", "TLS needs certfile and keyfile")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _MINIMUM_VERSION[listener.tls_version]
    if b"-----BEGIN CERTIFICATE-----" not in _load(field, "certfile", listener.certfile):
        raise ConfigError(f"{field}.certfile", f"no PEM certificate in {listener.certfile}")
    _load(field, "keyfile", listener.keyfile)
    try:
        # A password callback, so that an encrypted key fails here instead of
        # OpenSSL prompting on the terminal of a daemon.
        ctx.load_cert_chain(listener.certfile, listener.keyfile, password=_no_password)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"{field}.keyfile",
            f"not an unencrypted PEM private key matching certfile ({_reason(exc)})",
        ) from None
    if listener.cafile is not None:
        _load(field, "cafile", listener.cafile)
        try:
            ctx.load_verify_locations(cafile=listener.cafile)
        except ssl.SSLError as exc:
            raise ConfigError(f"{field}.cafile", f"no PEM certificate in it ({_reason(exc)})") from None
        ctx.verify_mode = ssl.CERT_REQUIRED if listener.require_certificate else ssl.CERT_OPTIONAL
    if listener.ciphers is not None:
        try:
            ctx.set_ciphers(listener.ciphers)
        except ssl.SSLError:
            raise ConfigError(f"{field}.ciphers", "no cipher matches this list") from None
    return ctx


def _load(field: str, key: str, path: str) -> bytes:
    """The file's content; fails with the key's name (ssl's own errors do not say which file)."""
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise ConfigError(f"{field}.{key}", f"cannot read {path}: {exc.strerror or exc}") from None


def _no_password() -> bytes:
    return b""


def _reason(exc: ssl.SSLError) -> str:
    return str(exc.reason or exc)


def peer_common_name(peercert: dict[str, Any] | None) -> str | None:
    """The first Common Name in a verified client certificate's subject, or None.

    ``peercert`` is ``SSLObject.getpeercert()``: ``{"subject": ((("commonName", "x"),), ...)}``,
    empty or None when the client sent no certificate.  A name with a NUL
    character is refused (None), as Mosquitto does.
    """
    if not peercert:
        return None
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName" and isinstance(value, str) and value and "\0" not in value:
                return value
            if key == "commonName":
                return None
    return None
