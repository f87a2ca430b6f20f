"""Typed, validated broker configuration.

Everything an operator can set lives here as frozen pydantic models: the
listeners, the MQTT protocol limits (named after Mosquitto's options where
one exists) and logging.  A configuration is checked completely before the
broker starts, and every problem surfaces as one :class:`ConfigError` naming
the dotted path of the offending key (``listeners.1.port``,
``mqtt.max_keepalive``), so a typo fails at start instead of being ignored.

Values come from the file, then from ``ZANZARA_<SECTION>__<KEY>`` environment
variables (:func:`environment_overrides`, given the environment as a mapping), and
the command's flags on top (``cli.py``).  The broker reads attributes only; it never
sees pydantic errors or raw dicts.
``zanzara.example.toml`` at the repository root is the reference for every
key and its default; ``tests/test_config.py`` keeps the two in step.

This module reads the configuration file and nothing else (it only checks
that a listener's ``static_dir`` is a directory): it must not import asyncio,
sockets or any zanzara module but :mod:`zanzara.errors`.
"""

from __future__ import annotations

import difflib
import inspect
import ipaddress
import os
import tomllib
import typing
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from .errors import ConfigError, ProtocolError
from .mqtt.topics import validate_topic_filter

__all__ = [
    "DEFAULT_PORTS",
    "ENV_PREFIX",
    "AdminConfig",
    "AdminScope",
    "AdminToken",
    "Config",
    "EnvOverride",
    "ListenerConfig",
    "ListenerProtocol",
    "LogFormat",
    "LogLevel",
    "MqttConfig",
    "PushConfig",
    "StorageConfig",
    "TlsVersion",
    "TopicPriority",
    "TopicTtl",
    "config_from_dict",
    "environment_overrides",
    "load_config",
    "merge_overrides",
]

ListenerProtocol = Literal["mqtt", "ws"]
TlsVersion = Literal["1.2", "1.3"]
LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["text", "json"]
# What an admin API token may do: read < publish < admin (each includes the ones before it).
AdminScope = Literal["read", "publish", "admin"]

_UINT16_MAX = 0xFFFF
_UINT32_MAX = 0xFFFFFFFF
# Largest Remaining Length a four-byte Variable Byte Integer can carry (section 1.5.5).
_MAX_REMAINING_LENGTH = 268_435_455
# The WebSocket path before any path was accepted: configs may still name it on TCP listeners.
_OLD_DEFAULT_WS_PATH = "/mqtt"
# The well-known port of each kind of listener, as Mosquitto and most MQTT clients
# assume: (protocol, TLS) -> port.
DEFAULT_PORTS: Mapping[tuple[str, bool], int] = {
    ("mqtt", False): 1883,
    ("mqtt", True): 8883,
    ("ws", False): 8083,
    ("ws", True): 8084,
}


class _Section(BaseModel):
    """Common settings for every configuration section.

    ``extra="forbid"``: an unknown key is an error, not silently ignored.
    ``strict=True``: TOML already types its values, so ``port = "1883"`` is a
    mistake to report, not a string to coerce.  ``frozen=True``: the running
    broker cannot mutate what it was started with.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ListenerConfig(_Section):
    """One socket the broker accepts connections on.

    ``protocol = "mqtt"`` is MQTT over TCP, ``"ws"`` MQTT over WebSocket; either
    speaks TLS (mqtts, wss) when ``certfile`` is set.  The TLS keys are named
    after Mosquitto's listener options.
    """

    host: str = Field(default="127.0.0.1", min_length=1)
    # 0 asks the OS for a free port (useful in tests).  Unset: the well-known
    # port of the protocol (DEFAULT_PORTS), filled in by _default_port.
    port: int = Field(default=1883, ge=0, le=_UINT16_MAX)
    protocol: ListenerProtocol = "mqtt"
    # protocol = "ws" only.  Unset: a WebSocket handshake for MQTT opens MQTT on any
    # path, as in Mosquitto ("/mqtt" is what clients usually ask for, "/" what
    # mqtt.connect("ws://host:port") asks for).  Set, e.g. "/mqtt": on that path
    # only; a handshake on another path gets HTTP 404.
    path: str | None = None
    # Folder whose files plain HTTP GET/HEAD requests for other paths receive
    # (Mosca's http.static): a web app and its broker on one origin.  "ws" only.
    static_dir: str | None = Field(default=None, min_length=1)
    # MQTT.js's browser bundle, shipped in the package, at /mqtt.min.js for plain HTTP
    # GET/HEAD (Mosca's http.bundle): a page on the same origin needs nothing else.  "ws" only.
    bundle: bool = False
    # Shown in logs and metrics; defaults to "host:port" wherever it is used.
    name: str | None = Field(default=None, min_length=1)
    # Open connections on this listener, counted from accept (before CONNECT);
    # -1: unlimited.  Over it: CONNACK 0x97 (3.1.1: 0x03), as mqtt.max_connections.
    max_connections: int = Field(default=-1, ge=-1)

    # -- TLS: every key below needs certfile, and keyfile needs it too. -------------
    # PEM server certificate (chain); setting it turns TLS on.
    certfile: str | None = Field(default=None, min_length=1)
    # PEM private key of certfile.
    keyfile: str | None = Field(default=None, min_length=1, validate_default=True)
    # PEM CA certificates that client certificates are verified against; a
    # client that presents a certificate not signed by them is refused.
    cafile: str | None = Field(default=None, min_length=1, validate_default=True)
    # Lowest TLS version accepted.
    tls_version: TlsVersion = Field(default="1.2", validate_default=True)
    # OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's defaults).
    ciphers: str | None = Field(default=None, min_length=1, validate_default=True)
    # Refuse clients that present no certificate (needs cafile).
    require_certificate: bool = Field(default=False, validate_default=True)
    # The Common Name of the client certificate becomes the username; the
    # CONNECT's own username and password are ignored, and a client without a
    # certificate is refused (as Mosquitto).  Needs cafile.
    use_identity_as_username: bool = Field(default=False, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _default_port(cls, data: object) -> object:
        if isinstance(data, Mapping) and "port" not in data:
            secure = data.get("certfile") is not None
            port = DEFAULT_PORTS.get((str(data.get("protocol", "mqtt")), secure))
            if port is not None:
                return {**data, "port": port}
        return data

    @field_validator("keyfile")
    @classmethod
    def _check_keyfile(cls, keyfile: str | None, info: ValidationInfo) -> str | None:
        certfile = info.data.get("certfile")
        if certfile is not None and keyfile is None:
            raise PydanticCustomError("tls_key", "required when certfile is set")
        if certfile is None and keyfile is not None:
            raise _needs_certfile()
        return keyfile

    @field_validator("cafile", "ciphers")
    @classmethod
    def _check_tls_option(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("certfile") is None:
            raise _needs_certfile()
        return value

    @field_validator("tls_version")
    @classmethod
    def _check_tls_version(cls, value: TlsVersion, info: ValidationInfo) -> TlsVersion:
        if value != "1.2" and info.data.get("certfile") is None:
            raise _needs_certfile()
        return value

    @field_validator("require_certificate", "use_identity_as_username")
    @classmethod
    def _check_client_certificates(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("certfile") is None:
            raise _needs_certfile()
        if value and info.data.get("cafile") is None:
            raise PydanticCustomError("tls_ca", "needs cafile, to verify client certificates")
        return value

    @property
    def tls(self) -> bool:
        """Whether this listener speaks TLS (mqtts, wss)."""
        return self.certfile is not None

    @field_validator("path")
    @classmethod
    def _check_path(cls, path: str | None, info: ValidationInfo) -> str | None:
        # ``info.data`` holds the fields declared above this one that validated.
        protocol = info.data.get("protocol")
        if path is None:
            return None
        if protocol == "mqtt":
            if path == _OLD_DEFAULT_WS_PATH:
                return None  # the old default, accepted where it always meant nothing
            raise PydanticCustomError("ws_only", 'only used when protocol = "ws"')
        if not path.startswith("/"):
            raise PydanticCustomError("path_format", "must start with '/'")
        return path

    @field_validator("static_dir")
    @classmethod
    def _check_static_dir(cls, static_dir: str | None, info: ValidationInfo) -> str | None:
        if static_dir is None:
            return None
        if info.data.get("protocol") != "ws":
            raise PydanticCustomError("ws_only", 'only used when protocol = "ws"')
        # Checked here rather than at start so that the mistake stops the broker before any listener binds.
        if not os.path.isdir(static_dir):
            raise PydanticCustomError(
                "static_dir", "{path} is not an existing directory", {"path": static_dir}
            )
        return static_dir

    @field_validator("bundle")
    @classmethod
    def _check_bundle(cls, bundle: bool, info: ValidationInfo) -> bool:
        if bundle and info.data.get("protocol") != "ws":
            raise PydanticCustomError("ws_only", 'only used when protocol = "ws"')
        return bundle

    @field_validator("max_connections")
    @classmethod
    def _check_max_connections(cls, value: int) -> int:
        return _unlimited_or_positive(value)


def _unlimited_or_positive(value: int) -> int:
    # 0 is refused: a limit that lets nobody in is a mistake, not a setting.
    if value == 0:
        raise PydanticCustomError("max_connections", "must be -1 (unlimited) or at least 1")
    return value


def _needs_certfile() -> PydanticCustomError:
    return PydanticCustomError("tls_only", "only used with TLS (set certfile and keyfile)")


class MqttConfig(_Section):
    """Protocol limits the broker enforces and announces (MQTT 5 CONNACK properties)."""

    # Server cap on keep alive seconds; a v5 client asking for more is told
    # this value in CONNACK (Server Keep Alive, [MQTT-3.2.2-21]).
    max_keepalive: int = Field(default=65535, ge=0, le=_UINT16_MAX)
    # Seconds a new connection has to send CONNECT before it is closed.
    connect_timeout: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    # Bytes, whole packet, both directions.  64 leaves room for a minimal
    # CONNECT; the upper bound is the largest packet the encoding allows.
    max_packet_size: int = Field(default=_MAX_REMAINING_LENGTH, ge=64, le=_MAX_REMAINING_LENGTH + 5)
    # QoS 1/2 PUBLISH packets a client may have unacknowledged towards us
    # (CONNACK Receive Maximum, section 3.2.2.3.3); 0 is a protocol error.
    receive_maximum: int = Field(default=100, ge=1, le=_UINT16_MAX)
    # What a client sending more unacknowledged QoS 1/2 PUBLISH than receive_maximum
    # gets.  "pause" (the default): reading from it stops until our acknowledgements
    # catch up, so TCP slows it and nothing is refused (3.1.1 has no Receive Maximum,
    # and common v5 clients overrun it).  "disconnect": MQTT 5 clients get DISCONNECT
    # 0x93 (section 4.9); 3.1.1 clients are paused either way.
    receive_maximum_exceeded: Literal["pause", "disconnect"] = "pause"
    # Our outgoing QoS 1/2 window per client, further capped by the
    # client's own Receive Maximum.
    max_inflight_messages: int = Field(default=100, ge=1, le=_UINT16_MAX)
    # Messages held per session beyond the inflight window; 0: unlimited.
    max_queued_messages: int = Field(default=1000, ge=0)
    # Payload bytes held per session beyond the inflight window; 0: unlimited.
    max_queued_bytes: int = Field(default=0, ge=0)
    # Bounds the work of matching one topic (denial of service guard).
    max_topic_levels: int = Field(default=128, ge=1)
    # Longest topic name or filter, in UTF-8 bytes.  65535 is the protocol's own
    # bound [MQTT-4.7.3-3]; a longer PUBLISH topic is v5 DISCONNECT 0x90, a longer
    # filter SUBACK 0x8F, a longer will topic CONNACK 0x90.
    max_topic_length: int = Field(default=65535, ge=1, le=65535)
    # CONNACK Topic Alias Maximum; 0 disables topic aliases from clients.
    topic_alias_maximum: int = Field(default=10, ge=0, le=_UINT16_MAX)
    max_qos: int = Field(default=2, ge=0, le=2)
    retain_available: bool = True
    allow_zero_length_clientid: bool = True
    # [MQTT-3.1.3-5] a server must accept client ids of 1 to 23 characters,
    # so a smaller cap would break conforming clients.
    max_client_id_length: int = Field(default=_UINT16_MAX, ge=23, le=_UINT16_MAX)
    # Cap on the Session Expiry Interval a v5 client may ask for; None: no cap.
    session_expiry_max: int | None = Field(default=None, ge=0, le=_UINT32_MAX)
    # Seconds a disconnected 3.1.1 clean_session=0 session is kept; None:
    # forever.  0 is refused so that nobody writes it meaning "never".
    persistent_client_expiration: int | None = Field(default=None, ge=1, le=_UINT32_MAX)
    shared_subscriptions: bool = True
    wildcard_subscriptions: bool = True
    subscription_identifiers: bool = True

    # -- limits against abuse ------------------------------------------------------
    # Open connections over all listeners (each listener's own max_connections
    # applies too); -1: unlimited.  Counted from accept, before CONNECT, as
    # Mosquitto counts: an idle socket holds a descriptor as much as a client.
    # One over the limit is answered CONNACK 0x97 (3.1.1: 0x03) when its CONNECT
    # comes, or closed at once when many such refusals are already pending.
    max_connections: int = Field(default=-1, ge=-1)
    # Topic filters one client may hold; 0: unlimited.  Each filter beyond it
    # gets SUBACK 0x97 (3.1.1: 0x80); re-subscribing to a held filter is free.
    max_subscriptions: int = Field(default=0, ge=0)
    # PUBLISH packets per second read from one connection; 0: unlimited.  Bursts
    # of one second's worth pass; beyond that the connection's reading pauses
    # until the rate allows the next message, so excess is delayed, never dropped.
    max_publish_rate: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    # Bytes per second read from one connection (every packet, before CONNECT
    # too); 0: unlimited.  Excess pauses reading, as max_publish_rate.
    max_bytes_rate: int = Field(default=0, ge=0)

    # -- slow subscribers and memory -------------------------------------------------
    # Bytes that may wait in one connection's outgoing buffer once its socket is full
    # (what the kernel's socket buffer holds comes on top).  Beyond it, QoS 0 messages
    # to that client are dropped (counted, event "dropped", reason "slow subscriber")
    # and QoS 1/2 messages wait in its session queue (max_queued_messages/bytes).
    max_write_buffer: int = Field(default=1024 * 1024, ge=1)
    # Bytes waiting in the buffers of all full sockets together; over it, the clients
    # whose messages fill them stop being read until the buffers drain (the only way a
    # subscriber can slow a publisher).  0: no broker-wide limit.
    max_write_buffer_total: int = Field(default=256 * 1024 * 1024, ge=0)
    # Seconds a full socket may take nothing before its client is disconnected (its
    # will is published, its session kept), as aedes' drainTimeout; 0: never.
    write_timeout: float = Field(default=30.0, ge=0, allow_inf_nan=False)

    @field_validator("max_connections")
    @classmethod
    def _check_max_connections(cls, value: int) -> int:
        return _unlimited_or_positive(value)


class TopicPriority(_Section):
    """``alerts/#`` -> 9: the priority of messages whose publisher did not set one."""

    topic: str = Field(min_length=1)
    priority: int = Field(ge=0, le=255)

    @field_validator("topic")
    @classmethod
    def _check_topic(cls, topic: str) -> str:
        return _valid_filter(topic)


class TopicTtl(_Section):
    """``news/#`` -> 3600: the expiry (seconds) of messages published without one."""

    topic: str = Field(min_length=1)
    ttl: int = Field(ge=1, le=_UINT32_MAX)

    @field_validator("topic")
    @classmethod
    def _check_topic(cls, topic: str) -> str:
        return _valid_filter(topic)


def _valid_filter(topic: str) -> str:
    try:
        validate_topic_filter(topic)
    except ProtocolError as exc:
        raise PydanticCustomError(
            "topic_filter", "invalid topic filter: {problem}", {"problem": str(exc)}
        ) from None
    return topic


class PushConfig(_Section):
    """Push-notification behaviour: delivery tracking, priorities and expiry rules."""

    # Record, per message and recipient, when it was queued, sent and acknowledged (or why not).
    track_deliveries: bool = True
    # Tell MQTT 5 publishers the message id (the receipts' key) in a "message-id" user
    # property of PUBACK/PUBREC (QoS 1/2 messages always have an id, tracked or not).
    # Never sent to a client that set Request Problem Information to 0 or where it would
    # exceed the client's Maximum Packet Size; off for strict clients that expect
    # PUBACKs of 2-4 bytes.
    ack_message_id: bool = True
    # Seconds a delivery receipt is kept.
    receipt_retention: float = Field(default=86400.0, gt=0, allow_inf_nan=False)
    # Expiry (seconds) of queued messages published without one (3.1.1 publishers); None: never.
    default_ttl: int | None = Field(default=None, ge=1, le=_UINT32_MAX)
    # First matching rule wins; an MQTT 5 "priority" user property overrides these.
    priority: tuple[TopicPriority, ...] = Field(default=(), strict=False)
    # First matching rule wins; an MQTT 5 Message Expiry Interval overrides these.
    ttl: tuple[TopicTtl, ...] = Field(default=(), strict=False)


class StorageConfig(_Section):
    """Where sessions, queues and retained messages survive restarts."""

    # "sqlite": embedded file (the default); "redis": a Redis server (several nodes);
    # "memory": nothing survives a restart.
    backend: Literal["sqlite", "redis", "memory"] = "sqlite"
    # SQLite database file; its directory is created when missing.  Unset: zanzara.db in
    # data_dir (Config.sqlite_path); a relative path is relative to the working directory.
    path: str | None = Field(default=None, min_length=1)
    # "fsync": a committed batch survives kill -9 and power loss.  "os": survives
    # kill -9; on power loss the last batches the OS had not written are lost.
    durability: Literal["fsync", "os"] = "fsync"
    # Redis connection URL (backend = "redis"); durability is Redis's own appendfsync setting.
    url: str = Field(default="redis://127.0.0.1:6379/0", min_length=1)
    # Prefix of every Redis key, so several brokers or apps can share one Redis database.
    prefix: str = "zanzara:"
    # Seconds a broker's hold on its Redis prefix outlives it (renewed every third of it): a
    # second broker on the same prefix is refused meanwhile, a killed one's restart waits this long.
    lease: float = Field(default=5.0, ge=1.0, le=300.0)

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        # The shape only (as redis-py parses it), so that check-config catches a typo; whether
        # Redis answers there is found out at start.
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in {"redis", "rediss", "unix"}:
            raise PydanticCustomError("redis_url", "must start with redis://, rediss:// or unix://")
        try:
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            raise PydanticCustomError("redis_url", "the port is not a number") from None
        return url


class AdminToken(_Section):
    """A bearer token of the admin API ([[admin.tokens]]) and what it may do."""

    # At least 16 characters: a token is a password that never goes through a slow hash.
    token: str = Field(min_length=16)
    scope: AdminScope = "read"
    # Who holds it, for the logs (the token itself is never logged).
    name: str | None = Field(default=None, min_length=1)


class AdminConfig(_Section):
    """The HTTP admin API, the Prometheus metrics and the dashboard ([admin])."""

    host: str = Field(default="127.0.0.1", min_length=1)
    # 0: off.  The zanzara command serves it on 18083 when neither the file, the
    # environment nor --admin-port says (an embedded Config() has only what it is given).
    port: int = Field(default=0, ge=0, le=_UINT16_MAX)
    tokens: tuple[AdminToken, ...] = Field(default=(), strict=False)
    # One token a line: "SCOPE TOKEN [NAME]" ('#' starts a comment); re-read on SIGHUP.
    token_file: str | None = Field(default=None, min_length=1)
    # Largest request body accepted (bytes); more is answered 413.
    max_body: int = Field(default=4 * 1024 * 1024, ge=1024)
    # Events a /api/v1/events reader may fall behind by before it misses some (counted).
    events_buffer: int = Field(default=1000, ge=1)

    @model_validator(mode="after")
    def _tokens_beyond_loopback(self) -> Self:
        # Anyone who can reach a non-loopback address could publish and kick clients.
        if self.port and not self.tokens and self.token_file is None and not _loopback(self.host):
            raise ConfigError(
                "admin.tokens",
                f"required when the admin API listens beyond this machine (admin.host = {self.host!r}): "
                'set admin.tokens or admin.token_file, or admin.host = "127.0.0.1"',
            )
        return self


def _loopback(host: str) -> bool:
    """True for localhost and loopback addresses; a host name is assumed to reach further."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Config(_Section):
    """The whole broker configuration (the root of the TOML file)."""

    # Lists from TOML become tuples (strict=False allows that one coercion)
    # so that a frozen Config is immutable all the way down.
    listeners: tuple[ListenerConfig, ...] = Field(
        default_factory=lambda: (ListenerConfig(),), min_length=1, strict=False
    )
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    push: PushConfig = Field(default_factory=PushConfig)
    admin: AdminConfig = Field(default_factory=AdminConfig)
    # True here, so that an embedded Broker() keeps working; a configuration
    # file that declares [[listeners]] without this key gets False instead
    # (see _file_defaults), as in Mosquitto 2.
    allow_anonymous: bool = True
    # Mosquitto-format files (mosquitto_passwd / `zanzara passwd`, acl_file syntax); re-read on SIGHUP.
    password_file: str | None = Field(default=None, min_length=1)
    acl_file: str | None = Field(default=None, min_length=1)
    log_level: LogLevel = "info"
    log_format: LogFormat = "text"
    # Where the broker keeps its state (the SQLite database unless storage.path says
    # otherwise); relative to the working directory, created when missing.
    data_dir: str = Field(default="data", min_length=1)
    # Seconds clients get, once SIGTERM/SIGINT asked the broker to stop, to take their
    # DISCONNECT and close before the rest are cut off.
    shutdown_grace: float = Field(default=5.0, ge=0, allow_inf_nan=False)

    # -- $SYS topics (core/sys_topics.py) --
    # Seconds between $SYS/broker/... updates (Mosquitto's sys_interval); 0: none.
    sys_interval: float = Field(default=10.0, ge=0, allow_inf_nan=False)
    # $SYS/brokers/<node>/clients/<id>/connected|disconnected as clients come and go.
    sys_presence_events: bool = False
    # <node> in those topics; unset: the host name.
    sys_node_name: str | None = Field(default=None, min_length=1, pattern=r"^[^/+#]+$")

    @property
    def sqlite_path(self) -> str:
        """The SQLite database file: storage.path, or zanzara.db in data_dir."""
        return self.storage.path or os.path.join(self.data_dir, "zanzara.db")

    @model_validator(mode="after")
    def _check_listeners_distinct(self) -> Self:
        # Raised as ConfigError directly: pydantic lets non-ValueError
        # exceptions through, and only here do we know the exact field.
        bound: dict[tuple[str, int], int] = {}
        named: dict[str, int] = {}
        for index, listener in enumerate(self.listeners):
            # Port 0 binds a fresh ephemeral port each time, so it never clashes.
            if listener.port != 0:
                address = (listener.host.lower(), listener.port)
                if address in bound:
                    raise ConfigError(
                        f"listeners.{index}.port",
                        f"{listener.host}:{listener.port} is already used by listeners.{bound[address]}",
                    )
                bound[address] = index
            if listener.name is not None:
                if listener.name in named:
                    raise ConfigError(
                        f"listeners.{index}.name",
                        f"{listener.name!r} is already used by listeners.{named[listener.name]}",
                    )
                named[listener.name] = index
        return self


def load_config(path: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate a TOML configuration file, with ``ZANZARA_*`` overrides from ``environ``.

    ``path`` None: the built-in defaults (and ``environ``).  ``environ`` is a mapping
    such as ``os.environ``, read and never changed; None: no overrides.
    Raises :class:`ConfigError`: for an unreadable file or a TOML syntax error
    the field is the file name; for a value from the environment the variable's
    name; otherwise the dotted key path.
    """
    data = _read_toml(os.fspath(path)) if path is not None else {}
    source = os.fspath(path) if path is not None else "<defaults>"
    if not environ:
        return config_from_dict(data, source=source)
    overrides = environment_overrides(environ)
    try:
        return config_from_dict(merge_overrides(data, overrides), source=source)
    except ConfigError as error:
        raise _blame_variable(error, overrides) from None


def _read_toml(source: str) -> dict[str, object]:
    try:
        with open(source, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(source, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        # [TOML 1.0] a TOML document must be valid UTF-8.
        raise ConfigError(source, f"not valid UTF-8 (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        # The message ends with "(at line N, column M)".
        raise ConfigError(source, f"invalid TOML: {exc}") from None
    return data


def config_from_dict(data: Mapping[str, object], source: str = "<dict>") -> Config:
    """Validate already-parsed configuration data (a TOML document's shape).

    A document that declares ``listeners`` and not ``allow_anonymous`` gets
    ``allow_anonymous = False`` (``Config()`` itself defaults to True).
    ``source`` names the data in errors that concern it as a whole.
    Raises :class:`ConfigError` naming the first offending key.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(source, f"expected a table, got {type(data).__name__}")
    try:
        return Config.model_validate(_file_defaults(dict(data)))
    except ValidationError as exc:
        raise _to_config_error(exc, source) from None


def _file_defaults(data: dict[str, object]) -> dict[str, object]:
    """Defaults that differ between a configuration document and ``Config()``.

    As Mosquitto 2: whoever writes listeners into a file is opening the broker
    beyond the loopback-only defaults, so anonymous access must then be asked
    for explicitly (``allow_anonymous = true``); a file without listeners keeps
    the loopback listener and anonymous access, like no file at all.
    """
    if "listeners" in data and "allow_anonymous" not in data:
        return {**data, "allow_anonymous": False}
    return data


def _to_config_error(exc: ValidationError, source: str) -> ConfigError:
    # One error at a time: the first is usually the cause of the rest
    # (pydantic reports a failed list item and then the list it emptied).
    error = exc.errors(include_url=False)[0]
    loc = error["loc"]
    field = ".".join(str(part) for part in loc) or source
    return ConfigError(field, _describe(error))


def _describe(error: ErrorDetails) -> str:
    """Phrase a pydantic error in TOML's vocabulary (table, array, key)."""
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key" + _suggestion(error["loc"])
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        return "Input should be a table"
    if kind == "tuple_type":
        return "Input should be an array"
    if kind == "too_short":
        return f"should have at least {error.get('ctx', {}).get('min_length', 1)} entry"
    return error["msg"]


def _suggestion(loc: tuple[int | str, ...]) -> str:
    """'; did you mean ...?' for a misspelt key, or nothing."""
    section = _section_at(loc[:-1])
    if section is None or not loc:
        return ""
    matches = difflib.get_close_matches(str(loc[-1]), list(section.model_fields), n=1)
    return f"; did you mean {matches[0]!r}?" if matches else ""


def _section_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model that validates the table at ``loc`` (list indices skipped)."""
    section: type[BaseModel] = Config
    for part in loc:
        if isinstance(part, int):
            continue
        field = section.model_fields.get(part)
        if field is None:
            return None
        inner = _model_in(field.annotation)
        if inner is None:
            return None
        section = inner
    return section


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The model class inside an annotation such as ``tuple[ListenerConfig, ...]``."""
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


# -- environment overrides ------------------------------------------------------------

# ZANZARA_LOG_LEVEL=debug sets log_level; ZANZARA_MQTT__MAX_INFLIGHT_MESSAGES=50 sets
# mqtt.max_inflight_messages: "__" separates a table from its key, since key names hold "_".
ENV_PREFIX = "ZANZARA_"
_ENV_NESTING = "__"


@dataclass(frozen=True, slots=True)
class EnvOverride:
    """One ``ZANZARA_*`` variable: the key it sets (``("mqtt", "max_qos")``) and its parsed value."""

    variable: str
    path: tuple[str, ...]
    value: object

    @property
    def key(self) -> str:
        """The dotted key, as configuration errors name it."""
        return ".".join(self.path)


def environment_overrides(environ: Mapping[str, str]) -> list[EnvOverride]:
    """The configuration keys that the ``ZANZARA_*`` variables of ``environ`` set.

    A value is read as a TOML value where it is one (``50``, ``true``, ``[1, 2]``,
    ``'"quoted"'``, an inline table), else taken as a string, as it is for a key that
    only takes strings (``ZANZARA_STORAGE__PREFIX=123`` is the text "123").  Arrays
    of tables (``listeners``, ``push.priority``, ``admin.tokens``) are given whole,
    e.g. ``ZANZARA_LISTENERS='[{port = 1884}]'``.  Raises :class:`ConfigError` naming
    the variable when it names no key.
    """
    overrides = []
    for variable in sorted(environ):
        if variable.startswith(ENV_PREFIX) and variable != ENV_PREFIX:
            path = tuple(variable[len(ENV_PREFIX) :].lower().split(_ENV_NESTING))
            annotation = _annotation_at(variable, path)
            overrides.append(EnvOverride(variable, path, _env_value(environ[variable], annotation)))
    return overrides


def merge_overrides(data: Mapping[str, object], overrides: list[EnvOverride]) -> dict[str, object]:
    """``data`` (a TOML document's shape) with each override's key replaced; ``data`` is not changed."""
    merged = dict(data)
    for override in overrides:
        table = merged
        for part in override.path[:-1]:
            inner = table.get(part)
            # A table of the file is copied before it changes; anything else is replaced.
            table[part] = dict(inner) if isinstance(inner, Mapping) else {}
            table = typing.cast(dict[str, object], table[part])
        table[override.path[-1]] = override.value
    return merged


def _annotation_at(variable: str, path: tuple[str, ...]) -> object:
    """The type of the key ``path`` names; ConfigError naming ``variable`` if there is none."""
    section: type[BaseModel] | None = Config
    annotation: object = None
    for depth, part in enumerate(path):
        if section is None:
            raise ConfigError(variable, f"{'.'.join(path[:depth])} is not a table")
        field = section.model_fields.get(part)
        if field is None:
            matches = difflib.get_close_matches(part, list(section.model_fields), n=1)
            hint = f"; did you mean {_env_name((*path[:depth], matches[0]))}?" if matches else ""
            raise ConfigError(variable, f"unknown key {'.'.join(path[: depth + 1])!r}{hint}")
        annotation = field.annotation
        model = annotation if inspect.isclass(annotation) else None
        section = model if model is not None and issubclass(model, BaseModel) else None
    return annotation


def _env_name(path: tuple[str, ...]) -> str:
    return ENV_PREFIX + _ENV_NESTING.join(path).upper()


def _env_value(raw: str, annotation: object) -> object:
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw
    if not isinstance(value, str) and _takes_text_only(annotation):
        return raw
    return value


def _takes_text_only(annotation: object) -> bool:
    """True for ``str``, ``str | None`` and Literals of strings."""
    if annotation is str:
        return True
    if typing.get_origin(annotation) is Literal:
        return all(isinstance(choice, str) for choice in typing.get_args(annotation))
    arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
    return bool(arguments) and all(_takes_text_only(a) for a in arguments)


def _blame_variable(error: ConfigError, overrides: list[EnvOverride]) -> ConfigError:
    """The error, naming the variable instead of the key when the key's value came from one."""
    for override in overrides:
        if error.field == override.key or error.field.startswith(override.key + "."):
            return ConfigError(override.variable, error.problem)
    return error
