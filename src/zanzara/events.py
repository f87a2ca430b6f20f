"""Broker notifications: what happened, delivered to listeners without blocking routing.

Names follow Aedes/Mosca in Python style: ``client_connected``,
``client_disconnected``, ``published``, ``delivered``, ``subscribed``,
``unsubscribed``.  Each listener gets its own bounded queue drained by its own
task; when a slow listener's queue is full the event is dropped for that
listener and counted in :attr:`EventHub.dropped` (routing never waits for a
listener, ARCHITECTURE.md "Interfaces").
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from .hooks import ClientInfo
from .message import Message
from .mqtt.packets import Subscription

__all__ = [
    "ClientConnected",
    "ClientDisconnected",
    "Delivered",
    "DisconnectReason",
    "Dropped",
    "Event",
    "EventHub",
    "Published",
    "Subscribed",
    "Unsubscribed",
]

logger = logging.getLogger(__name__)


class DisconnectReason(StrEnum):
    """Why a client's connection ended (a str: compare it with "takeover" as well)."""

    DISCONNECT = "disconnect"  # the client's DISCONNECT
    TAKEOVER = "takeover"  # a new connection with the same client id [MQTT-3.1.4-3]
    KEEPALIVE = "keepalive"  # nothing from the client for 1.5 keep alive [MQTT-3.1.2-22]
    PROTOCOL_ERROR = "protocol_error"  # the client broke the protocol, or handling it failed
    CONNECTION_LOST = "connection_lost"  # the socket went away
    SHUTDOWN = "shutdown"  # the broker stopped
    NOT_AUTHORIZED = "not_authorized"  # a re-authentication failed
    WRITE_TIMEOUT = "write_timeout"  # its full socket took nothing for mqtt.write_timeout
    STORE_FAILURE = "store_failure"  # an acknowledgement could not be made durable
    KICKED = "kicked"  # an operator disconnected it (admin API, Broker.kick)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConnected:
    """A client was accepted (CONNACK sent); ``session_present``: it resumed an existing session."""

    name = "client_connected"
    client: ClientInfo
    session_present: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientDisconnected:
    """A client's connection ended and its will, if any, was published or scheduled."""

    name = "client_disconnected"
    client: ClientInfo
    reason: DisconnectReason


@dataclass(frozen=True, slots=True, kw_only=True)
class Published:
    """A message was accepted for routing: from a client, a will or the embedded API."""

    name = "published"
    client_id: str | None  # None: published by the broker (embedded API, wills use the client's id)
    message: Message


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivered:
    """A message reached a client: written (QoS 0) or acknowledged (PUBACK/PUBCOMP)."""

    name = "delivered"
    client_id: str
    message: Message
    qos: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Dropped:
    """A queued message was removed before delivery: quota, collapse key, size limit."""

    name = "dropped"
    client_id: str
    message: Message
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscribed:
    """A SUBSCRIBE was answered; ``reason_codes`` are the SUBACK's, one per subscription
    (0x80 and above: refused)."""

    name = "subscribed"
    client: ClientInfo
    subscriptions: tuple[Subscription, ...]
    reason_codes: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Unsubscribed:
    """An UNSUBSCRIBE was handled: every listed filter, whether it was subscribed or not."""

    name = "unsubscribed"
    client: ClientInfo
    topic_filters: tuple[str, ...]


Event = ClientConnected | ClientDisconnected | Published | Delivered | Dropped | Subscribed | Unsubscribed
Listener = Callable[[Event], Awaitable[None] | None]


class _Subscriber:
    def __init__(self, callback: Listener, names: frozenset[str] | None, maxsize: int) -> None:
        self.callback = callback
        self.names = names
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        while True:
            event = await self.queue.get()
            try:
                result = self.callback(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("event listener %r failed on %s", self.callback, event.name)
            finally:
                self.queue.task_done()


class EventHub:
    """Fan events out to listeners, each behind its own bounded queue."""

    def __init__(self, queue_size: int = 10_000) -> None:
        self._subscribers: list[_Subscriber] = []
        self._queue_size = queue_size
        self.dropped = 0
        # Cheap test on the hot path: is anyone listening at all?
        self.active = False

    def add(self, callback: Listener, *names: str) -> Callable[[], None]:
        """Call ``callback(event)`` for events named ``names`` (all when empty); returns a remover."""
        sub = _Subscriber(callback, frozenset(names) or None, self._queue_size)
        sub.task = asyncio.get_running_loop().create_task(sub.run(), name=f"zanzara-events-{callback!r}")
        self._subscribers.append(sub)
        self.active = True

        def remove() -> None:
            if sub in self._subscribers:
                self._subscribers.remove(sub)
                self.active = bool(self._subscribers)
            if sub.task is not None:
                sub.task.cancel()

        return remove

    def emit(self, event: Event) -> None:
        for sub in self._subscribers:
            if sub.names is not None and event.name not in sub.names:
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                self.dropped += 1

    async def close(self) -> None:
        """Let listeners drain what is queued (briefly), then stop them."""
        for sub in self._subscribers:
            if sub.task is None:
                continue
            try:
                async with asyncio.timeout(1.0):
                    await sub.queue.join()
            except TimeoutError:
                logger.warning("event listener %r did not drain in time", sub.callback)
            sub.task.cancel()
        self._subscribers.clear()
        self.active = False
