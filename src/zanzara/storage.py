"""Store Protocols: what the broker persists, named by direction as in Aedes.

Writes are *recorded* synchronously (cheap: appended to the current batch)
and become durable together when the batch commits; :meth:`Store.commit`
returns an awaitable that completes when everything recorded so far is
durable.  The broker acknowledges a QoS 1/2 PUBLISH (PUBACK/PUBREC) and a
SUBSCRIBE (SUBACK) only after that awaitable completes, so an acknowledged
message is never lost (group commit: one transaction and one fsync for many
messages).

A message is stored once (``put_message``) and referenced by every queue
entry that holds it; it is deleted when nothing references it any more.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from .message import Message
from .session import OutState
from .topic_tree import SubscriptionEntry

__all__ = ["QueueRecord", "SessionRecord", "Snapshot", "Store"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRecord:
    client_id: str
    expiry_interval: int
    # Wall-clock time the client disconnected; None while connected.
    disconnected_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueRecord:
    """One message on its way to one session, as stored."""

    message: Message
    qos: int
    retain: bool
    subscription_ids: tuple[int, ...] = ()
    state: OutState = OutState.QUEUED
    packet_id: int = 0


@dataclass(slots=True, kw_only=True)
class Snapshot:
    """Everything a store holds, loaded at start before listeners open."""

    sessions: list[SessionRecord] = field(default_factory=list)
    subscriptions: list[SubscriptionEntry] = field(default_factory=list)
    # client id -> entries in delivery order (inflight first, by packet send order)
    queues: dict[str, list[QueueRecord]] = field(default_factory=dict)
    incoming: dict[str, set[int]] = field(default_factory=dict)
    retained: list[Message] = field(default_factory=list)


class Store(Protocol):
    name: str

    async def open(self) -> Snapshot:
        """Connect/create and load what survives from the last run."""

    async def close(self) -> None:
        """Commit what is pending and release resources."""

    def commit(self) -> asyncio.Future[None]:
        """Done when every write recorded before this call is durable; fails with StoreError."""

    # -- sessions and subscriptions ---------------------------------------------
    def session_put(self, record: SessionRecord) -> None: ...
    def session_delete(self, client_id: str) -> None:
        """The session and its subscriptions, queue and incoming packet ids."""

    def subscription_put(self, entry: SubscriptionEntry) -> None: ...
    def subscription_delete(self, client_id: str, topic_filter: str) -> None: ...

    # -- outgoing (broker -> client) --------------------------------------------
    def outgoing_enqueue(self, client_id: str, record: QueueRecord) -> None:
        """Store the message (once) and this session's reference to it."""

    def outgoing_update(self, client_id: str, message_id: str, state: OutState, packet_id: int) -> None: ...
    def outgoing_delete(self, client_id: str, message_id: str) -> None: ...

    # -- incoming QoS 2 (client -> broker) ----------------------------------------
    def incoming_put(self, client_id: str, packet_id: int) -> None: ...
    def incoming_delete(self, client_id: str, packet_id: int) -> None: ...

    # -- retained messages --------------------------------------------------------
    def retained_put(self, message: Message) -> None: ...
    def retained_delete(self, topic: str) -> None: ...
