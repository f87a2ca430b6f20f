"""The embedded broker: ``async with zanzara.Broker(...)`` in any asyncio program.

:class:`Broker` builds the store, the core and the listeners from a
:class:`~zanzara.config.Config`, and is the public API over them: hooks,
events, the server-side publish and delivery receipts.  ``server.py`` runs it
as the ``zanzara`` command.

Shutdown order (ARCHITECTURE.md rule 6): stop accepting, send DISCONNECT
(v5: 0x8B) to every client, flush, wait briefly for sockets to close, cancel.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from types import TracebackType
from typing import Self

from .admin.server import AdminServer
from .auth.files import FileAuth
from .backends.memory import MemoryStore
from .backends.redis import RedisStore
from .backends.sqlite import SqliteStore
from .config import Config, ListenerConfig, MqttConfig
from .core import Core, PublishResult
from .core.service import SessionView
from .errors import ConfigError, StoreError
from .events import Event
from .hooks import Authenticator, EnhancedAuthenticator, PublishAuthorizer, SubscribeAuthorizer
from .mqtt.enums import ReasonCode
from .mqtt.properties import EMPTY_PROPERTIES, Properties
from .storage import Receipt, Store
from .transports.admission import ConnectionLimits
from .transports.connection import Flusher, MqttConnection
from .transports.listener import Listener, create_listener

__all__ = ["Broker", "PublishResult"]

logger = logging.getLogger(__name__)


class Broker:
    """An MQTT broker inside your asyncio program.

    >>> async with Broker(port=1883) as broker:          # doctest: +SKIP
    ...     await broker.publish("alerts/1", b"hello", qos=1)
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        mqtt: MqttConfig | None = None,
        authenticators: Iterable[Authenticator | EnhancedAuthenticator] = (),
        authorizers: Iterable[PublishAuthorizer | SubscribeAuthorizer] = (),
    ) -> None:
        config = config or Config()
        if host is not None or port is not None:
            first = config.listeners[0] if config.listeners else ListenerConfig()
            changed = first.model_copy(
                update={k: v for k, v in (("host", host), ("port", port)) if v is not None}
            )
            config = config.model_copy(update={"listeners": (changed, *config.listeners[1:])})
        if mqtt is not None:
            config = config.model_copy(update={"mqtt": mqtt})
        self.config = config
        self.core = Core(config.mqtt, allow_anonymous=config.allow_anonymous, push=config.push)
        # password_file / acl_file: first in the chains, so Python hooks see what they abstain on.
        self.file_auth: FileAuth | None = None
        if config.password_file or config.acl_file:
            self.file_auth = FileAuth(config.password_file, config.acl_file)
            self.add_authenticator(self.file_auth)
            self.add_authorizer(self.file_auth)
            if config.acl_file:
                self.core.set_acl(self.file_auth.may_receive, self.file_auth.remember)
                self.file_auth.on_change = self.core.invalidate
        for hook in authenticators:
            self.add_authenticator(hook)
        for authz in authorizers:
            self.add_authorizer(authz)
        self.listeners: list[Listener] = []
        self._connections: set[MqttConnection] = set()
        self._limits = ConnectionLimits(config.mqtt.max_connections)
        self._flusher: Flusher | None = None
        self._stopped = asyncio.Event()
        self._all_closed = asyncio.Event()
        self._all_closed.set()
        self._started = False
        self._stopping = False
        self._store: Store | None = None
        # The admin HTTP API ([admin]; port 0: none), started with the listeners.
        self.admin: AdminServer | None = None
        # More that reload() re-reads, by name, each saying whether it worked (the zanzara
        # command adds the configuration file's log_level).
        self.reload_hooks: dict[str, Callable[[], bool]] = {}

    # -- hooks and events ---------------------------------------------------------

    def add_authenticator(self, hook: Authenticator | EnhancedAuthenticator) -> None:
        """Add a password hook (``authenticate``) and/or an MQTT 5 authentication method.

        An :class:`~zanzara.hooks.EnhancedAuthenticator` answers the CONNECTs whose
        Authentication Method is its ``method``; the password hooks never see those.
        A second hook for the same method replaces the first.
        """
        if isinstance(hook, EnhancedAuthenticator):
            self.core.add_enhanced_authenticator(hook)
        if isinstance(hook, Authenticator):
            self.core.add_authenticator(hook)

    def add_authorizer(self, hook: PublishAuthorizer | SubscribeAuthorizer) -> None:
        """Add an object with ``authorize_publish`` and/or ``authorize_subscribe``."""
        if isinstance(hook, PublishAuthorizer):
            self.core.add_publish_authorizer(hook)
        if isinstance(hook, SubscribeAuthorizer):
            self.core.add_subscribe_authorizer(hook)

    def on(self, *names: str) -> Callable[[Callable[[Event], Awaitable[None] | None]], Callable[[], None]]:
        """Decorator: ``@broker.on("client_connected")`` registers a listener (all events if no names)."""

        def register(callback: Callable[[Event], Awaitable[None] | None]) -> Callable[[], None]:
            return self.core.events.add(callback, *names)

        return register

    def add_event_listener(
        self, callback: Callable[[Event], Awaitable[None] | None], *names: str
    ) -> Callable[[], None]:
        """Call ``callback(event)`` for the named events; returns a function that removes it.

        (Not to be confused with :attr:`listeners`, the sockets the broker listens on.)
        """
        return self.core.events.add(callback, *names)

    # The name of 0.1, kept for the programs written against it: "listener" also names sockets.
    add_listener = add_event_listener

    def reload(self) -> bool:
        """Re-read the password and ACL files and the admin token file (SIGHUP); on an error
        the old ones stay.  False if anything failed."""
        return all(self.reload_files().values())

    @property
    def reloadable(self) -> bool:
        """Whether :meth:`reload` has anything to read."""
        tokens = self.admin is not None and self.config.admin.token_file is not None
        return self.file_auth is not None or tokens or bool(self.reload_hooks)

    def reload_files(self) -> dict[str, bool]:
        """Re-read each file the broker reloads; what was read, and whether it worked."""
        done: dict[str, bool] = {}
        if self.file_auth is not None:
            try:
                self.file_auth.reload()
            except ConfigError as exc:
                logger.error("reload failed, keeping the previous rules: %s", exc)
                done["password and ACL files"] = False
            else:
                logger.info("reloaded the password and ACL files")
                done["password and ACL files"] = True
        if self.admin is not None and self.config.admin.token_file is not None:
            try:
                self.admin.tokens.reload()
            except ConfigError as exc:
                logger.error("admin tokens not reloaded, keeping the previous ones: %s", exc)
                done["admin.token_file"] = False
            else:
                logger.info("reloaded the admin token file")
                done["admin.token_file"] = True
        for name, hook in self.reload_hooks.items():
            done[name] = hook()
        if not done:
            logger.info("reload: nothing to reload (no password_file, acl_file or admin.token_file)")
        return done

    # -- lifecycle ----------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("broker already started")
        self._started = True
        loop = asyncio.get_running_loop()
        self._flusher = Flusher(loop, max_buffered=self.config.mqtt.max_write_buffer_total)
        try:
            await self._open_store()
            # All built (TLS files read) before any opens: a bad file opens nothing.
            listeners = [
                create_listener(lc, i, self._factory(lc, i), self.config.mqtt)
                for i, lc in enumerate(self.config.listeners)
            ]
            for listener in listeners:
                await listener.start()
                self.listeners.append(listener)
                logger.info("listening on %s", listener.url)
            self._warn_about_access()
            cfg = self.config
            node = (cfg.sys_node_name or _host_name()) if cfg.sys_presence_events else None
            self.core.start_sys_topics(cfg.sys_interval, presence_node=node)
            if cfg.admin.port:
                self.admin = AdminServer(self)
                await self.admin.start()
        except BaseException:
            await self.stop()
            raise

    def _warn_about_access(self) -> None:
        """Say at start what Mosquitto 2 users would otherwise find out from refused clients."""
        # FileAuth with only an acl_file abstains on every CONNECT: it checks nothing.
        hooks = [hook for hook in self.core.state.authenticators if hook is not self.file_auth]
        checks_credentials = (
            bool(hooks)
            or self.config.password_file is not None
            or any(lc.use_identity_as_username for lc in self.config.listeners)
        )
        if not self.config.allow_anonymous and not checks_credentials:
            logger.warning(
                "allow_anonymous is false and nothing checks credentials (no password_file, "
                "authentication hook or use_identity_as_username): nobody can connect; "
                "set allow_anonymous = true or configure a password_file"
            )
        elif self.config.allow_anonymous:
            exposed = [lc for lc in self.config.listeners if not _is_loopback(lc.host)]
            if exposed:
                logger.warning(
                    "anonymous clients are allowed on %s, beyond this machine",
                    ", ".join(f"{lc.host}:{lc.port}" for lc in exposed),
                )

    async def _open_store(self) -> None:
        """Load sessions, queues and retained messages before any client can connect."""
        cfg = self.config.storage
        store: Store
        if cfg.backend == "memory":
            store = MemoryStore()
            where = "nothing survives a restart"
        elif cfg.backend == "redis":
            store = RedisStore(cfg.url, prefix=cfg.prefix, durability=cfg.durability, lease=cfg.lease)
            where = f"{cfg.url} prefix {cfg.prefix!r}"
        else:
            store = SqliteStore(self.config.sqlite_path, durability=cfg.durability)
            where = f"{self.config.sqlite_path} (durability {cfg.durability})"
        snapshot = await store.open()
        self._store = store
        self.core.attach_store(store, snapshot)
        logger.info("storage: %s, %s", store.name, where)

    def _factory(self, lc: ListenerConfig, index: int) -> Callable[[], MqttConnection]:
        flusher = self._flusher
        assert flusher is not None
        core = self.core
        connections = self._connections
        limits = self._limits
        name = lc.name or f"{lc.host}:{lc.port}"
        listener_max = lc.max_connections

        def closed(conn: MqttConnection) -> None:
            limits.release(index, conn.admission)
            self._connection_closed(conn)

        def make() -> MqttConnection:
            conn = MqttConnection(core, flusher, listener_name=name, on_close=closed)
            conn.admission = limits.admit(index, listener_max)
            connections.add(conn)
            self._all_closed.clear()
            return conn

        return make

    def _connection_closed(self, conn: MqttConnection) -> None:
        self._connections.discard(conn)
        if not self._connections:
            self._all_closed.set()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """(host, port) of every listener, with the real port when 0 was configured."""
        return [(lst.host, lst.port) for lst in self.listeners]

    async def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown: stop accepting, DISCONNECT everyone (v5: 0x8B), flush, close.

        Clients get ``grace`` seconds (default: the configuration's ``shutdown_grace``) to
        close before the rest are cut off.  Stopping a stopped broker does nothing.
        """
        if self._stopped.is_set():
            return
        self._stopping = True
        if grace is None:
            grace = self.config.shutdown_grace
        if self.admin is not None:
            # First: no operator action lands on a broker that is going away.
            await self.admin.stop()
        for listener in self.listeners:
            await listener.stop()
        self.listeners.clear()
        for conn in list(self._connections):
            conn.shutdown(ReasonCode.SERVER_SHUTTING_DOWN)
        if self._flusher is not None:
            self._flusher.run()
        try:
            async with asyncio.timeout(grace):
                await self._all_closed.wait()
        except TimeoutError:
            logger.warning("%d connections did not close in time; aborting them", len(self._connections))
            for conn in list(self._connections):
                if conn.transport is not None:
                    conn.transport.abort()
        await self.core.close()
        if self._store is not None:
            await self._store.close()
            self._store = None
        self._stopped.set()

    async def wait_closed(self) -> None:
        await self._stopped.wait()

    async def serve_forever(self, *, on_reload: Callable[[], object] | None = None) -> None:
        """Serve until SIGTERM or SIGINT, then shut down as :meth:`stop` does; starts the broker if needed.

        What the ``zanzara`` command does, for a program that embeds the broker: Ctrl-C
        gives every client its DISCONNECT (v5: 0x8B), the store is flushed and closed,
        and the call returns (no KeyboardInterrupt).  SIGHUP calls ``on_reload``
        (default :meth:`reload`: the password and ACL files).  It also returns when
        :meth:`stop` is called elsewhere, and stops the broker when it is cancelled.
        Signals can only be handled in the main thread; elsewhere it serves until
        cancelled or stopped.  Named after :meth:`asyncio.Server.serve_forever`.
        """
        if not self._started:
            await self.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        handlers: dict[signal.Signals, Callable[[], object]] = {
            signal.SIGINT: stop.set,
            signal.SIGTERM: stop.set,
            signal.SIGHUP: on_reload or self.reload,
        }
        installed = []
        for sig, handler in handlers.items():
            try:
                loop.add_signal_handler(sig, handler)
            except (ValueError, RuntimeError, NotImplementedError):  # not the main thread, or Windows
                continue
            installed.append(sig)
        if not installed:
            logger.warning("signals cannot be handled here (not the main thread): serving until stopped")
        logger.info("ready (%s event loop): SIGTERM or SIGINT stops, SIGHUP reloads", type(loop).__module__)
        waiters = [loop.create_task(stop.wait()), loop.create_task(self._stopped.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                logger.info("shutting down (shutdown_grace %g s)", self.config.shutdown_grace)
        finally:
            for waiter in waiters:
                waiter.cancel()
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self.stop()

    # -- publishing from the server side --------------------------------------------

    async def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
        user_properties: Iterable[tuple[str, str]] = (),
        priority: int | None = None,
        collapse_key: str | None = None,
        ttl: int | None = None,
        client_ids: Iterable[str] | None = None,
        dry_run: bool = False,
        wait: bool = True,
    ) -> PublishResult:
        """Publish as the broker.

        ``priority`` (0-255, higher first), ``collapse_key`` (replaces a queued message
        with the same key) and ``ttl`` (seconds) shape how offline sessions get it.
        ``client_ids`` restricts delivery to those sessions among the matching ones
        (targeted push; such a message cannot be retained).  ``dry_run`` checks the
        arguments and counts the matching sessions, publishing nothing.
        Returns the message id (QoS 1/2) for :meth:`receipts`, how many sessions matched,
        and of those how many were sent it now and how many queued it.

        QoS 1 and 2 keep the promise of a PUBACK: the call returns once the message, the
        queue entries of every persistent session it goes to, and the retained message
        if ``retain``, are committed to the store, so a crash after it returns loses
        nothing.  ``wait=False`` returns as soon as the message is routed (fire and
        forget: a crash within the next moments may lose it).  QoS 0 never waits.

        Raises :class:`~zanzara.StoreError` when the store could not commit it.  The
        message was routed all the same: connected subscribers may have it already, and
        the broker keeps retrying the write, so persistent sessions may still get it
        once the store is back.  Publishing again is the way to make sure of it, at the
        price of a second copy for those who already got the first (at least once).
        Raises :class:`~zanzara.InvalidArgument` (a ``ValueError``) for arguments that
        could never be published; retrying those is pointless.
        """
        if isinstance(payload, str):
            payload = payload.encode()
        props = properties or EMPTY_PROPERTIES
        user_props = tuple(user_properties)
        if user_props:
            props = _with_user_properties(props, user_props)
        result = self.core.publish(
            topic,
            payload,
            qos=qos,
            retain=retain,
            properties=props,
            priority=priority,
            collapse_key=collapse_key,
            ttl=ttl,
            client_ids=None if client_ids is None else frozenset(client_ids),
            dry_run=dry_run,
        )
        store = self.core.store
        if wait and qos and not dry_run and store is not None:
            # The message's writes were recorded while it was routed: this commit holds them.
            await _committed(store, topic, result)
        return result

    async def committed(self) -> None:
        """Wait until everything published so far is in the store (after ``wait=False``
        publishes: one commit for many).  Raises :class:`~zanzara.StoreError` if it failed."""
        store = self.core.store
        if store is not None:
            await asyncio.shield(store.commit())

    # -- the operator's tools: the core's service layer, for embedders and the admin API --------

    @property
    def ready(self) -> bool:
        """The store is loaded and every listener is up (and the broker is not stopping)."""
        return (
            self._started
            and self._store is not None
            and not self._stopping
            and (len(self.listeners) == len(self.config.listeners))
        )

    def session(self, client_id: str) -> SessionView | None:
        """A snapshot of one session and its client (None: no such session)."""
        return self.core.session(client_id)

    def kick(self, client_id: str, *, with_will: bool = True) -> bool:
        """Disconnect a client (v5: DISCONNECT 0x98); False if it is not connected."""
        return self.core.kick(client_id, with_will=with_will)

    def end_session(self, client_id: str, *, with_will: bool = False) -> bool:
        """Kick the client and forget its session, queue and subscriptions; False if none."""
        return self.core.end_session(client_id, with_will=with_will)

    def subscribe(self, client_id: str, topic_filter: str, *, qos: int = 0) -> bool:
        """Subscribe a session from the server side; False if there is no such session."""
        return self.core.subscribe(client_id, topic_filter, qos=qos)

    def unsubscribe(self, client_id: str, topic_filter: str) -> bool:
        """Remove one subscription of a session; False if it had none."""
        return self.core.unsubscribe(client_id, topic_filter)

    async def receipts(self, message_id: str) -> list[Receipt]:
        """Per recipient: when the message was queued, sent and acknowledged, or why not."""
        store = self.core.store
        if store is None:
            return []
        return await store.receipts(message_id)


async def _committed(store: Store, topic: str, result: PublishResult) -> None:
    try:
        # Shielded: the batch's future is shared with every publisher and ack in the batch; a
        # caller that is cancelled while waiting must not cancel it for all of them.
        await asyncio.shield(store.commit())
    except StoreError as exc:
        raise StoreError(f"message {result.message_id} to {topic!r} was not stored: {exc}") from exc


def _host_name() -> str:
    """The default ``<node>`` of the $SYS presence topics: the host name, as one topic level."""
    return socket.gethostname().replace("/", "_").replace("+", "_").replace("#", "_") or "zanzara"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: assume it reaches beyond this machine
        return False


def _with_user_properties(props: Properties, user_props: tuple[tuple[str, str], ...]) -> Properties:
    return replace(props, user_properties=props.user_properties + user_props)
