"""The broker's state, owned in one place: every handler module reads and changes this object.

Nothing here decides anything.  Sessions, live clients, the subscription and
retained trees, hooks, timers and counters sit in one :class:`CoreState`, so
that a handler is a function of ``(state, client, packet)`` and no two
classes share collaborators by reference.

Time comes in from outside: ``clock`` (wall-clock seconds, as message expiry
and receipts must mean the same after a restart) and ``scheduler`` (anything
with ``call_later``; the running event loop by default), so that wills, will
delay, session expiry and the receipt purge can be driven by a fake.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..config import MqttConfig, PushConfig
from ..events import EventHub
from ..hooks import (
    Authenticator,
    ClientInfo,
    EnhancedAuthenticator,
    PublishAuthorizer,
    SubscribeAuthorizer,
)
from ..message import Message
from ..mqtt.packets import Will
from ..session import Session
from ..storage import Store
from ..topic_tree import Matches, RetainedTree, SubscriptionTree
from .plan import Plan

if TYPE_CHECKING:
    from .client import Client

__all__ = ["CoreState", "Scheduler", "Stats", "TimerHandle"]


class TimerHandle(Protocol):
    """What a scheduled call returns: ``asyncio.TimerHandle`` satisfies it."""

    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """Where timers come from: ``asyncio.AbstractEventLoop`` satisfies it."""

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> TimerHandle: ...


class _RunningLoop:
    """The default scheduler: the event loop running when a timer is set."""

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback, *args)


@dataclass(slots=True)
class Stats:
    """The broker's counters (read by $SYS, metrics and tests)."""

    messages_sent: int = 0
    messages_expired: int = 0
    connections_total: int = 0
    # -- by kind, for the Prometheus collector (metrics.py); each costs one add where it counts --
    # PUBLISH received from clients by QoS (index 0-2): one add per publish, never per delivery.
    received_by_qos: list[int] = field(default_factory=lambda: [0, 0, 0])
    # QoS 1/2 deliveries ended by the subscriber's PUBACK or PUBCOMP (added once per ack run).
    deliveries_acknowledged: int = 0
    # CONNECTs refused, by CONNACK reason code (the accepted ones are connections_total).
    connects_refused: Counter[int] = field(default_factory=Counter)

    # Connections closed for a protocol error of the client's (not only malformed packets).
    malformed_packets: int = 0
    # Connections closed because handling their packet raised an error of ours.
    internal_errors: int = 0
    # Connections that sent more unacknowledged QoS 1/2 PUBLISH than receive_maximum (paused).
    receive_maximum_exceeded: int = 0
    # -- observability ($SYS, metrics) --
    # Client PUBLISH refused (an authorizer, or a topic of the broker's own): acknowledged, dropped.
    publishes_refused: int = 0
    # Bytes read from and written to clients' sockets (one add per read and per write).
    bytes_received: int = 0
    bytes_sent: int = 0
    # MQTT packets of every type read and written (Mosquitto's messages/received and /sent).
    packets_received: int = 0
    packets_sent: int = 0
    # Connections accepted by a listener (sockets), and CONNECT packets the core was given.
    sockets_opened: int = 0
    connects_received: int = 0
    # Persistent sessions that ended because their expiry interval passed.
    sessions_expired: int = 0
    # why -> messages dropped for it ("queue full", "slow subscriber", ...).
    drops: dict[str, int] = field(default_factory=dict)

    # Totals derived from the counters above rather than counted a second time.
    @property
    def messages_received(self) -> int:
        """PUBLISH received from clients, every QoS."""
        return sum(self.received_by_qos)

    @property
    def messages_dropped(self) -> int:
        """Messages dropped before delivery, every reason."""
        return sum(self.drops.values())

    @property
    def slow_subscriber_drops(self) -> int:
        """QoS 0 messages dropped because their subscriber's socket was full."""
        return self.drops.get("slow subscriber", 0)

    def counters(self) -> dict[str, int]:
        """Every integer counter by name, the derived totals included."""
        found = {name: getattr(self, name) for name in self.__slots__}
        named = {name: value for name, value in found.items() if isinstance(value, int)}
        for total in ("messages_received", "messages_dropped", "slow_subscriber_drops"):
            named[total] = getattr(self, total)
        return named


@dataclass(eq=False, slots=True)
class CoreState:
    """Everything the broker's semantics read and change; one instance per broker."""

    config: MqttConfig = field(default_factory=MqttConfig)
    push: PushConfig = field(default_factory=PushConfig)
    allow_anonymous: bool = True
    clock: Callable[[], float] = time.time
    scheduler: Scheduler = field(default_factory=_RunningLoop)
    sessions: dict[str, Session] = field(default_factory=dict)
    clients: dict[str, Client] = field(default_factory=dict)
    events: EventHub = field(default_factory=EventHub)
    stats: Stats = field(default_factory=Stats)
    store: Store | None = None
    # Delivery receipts ([push] track_deliveries): needs a store to keep them in.
    track_deliveries: bool = False
    # -- hooks --
    authenticators: list[Authenticator] = field(default_factory=list)
    # MQTT 5 enhanced authentication: one hook per Authentication Method.
    enhanced_authenticators: dict[str, EnhancedAuthenticator] = field(default_factory=dict)
    # Told who a method proved a client to be (the ACL's username for routing).
    on_authenticated: Callable[[ClientInfo], None] | None = None
    publish_authorizers: list[PublishAuthorizer] = field(default_factory=list)
    subscribe_authorizers: list[SubscribeAuthorizer] = field(default_factory=list)
    # (client id, topic) -> may that client read it (an ACL); checked once per topic and
    # client when a routing plan is built, so invalidate the plans when its answers change.
    may_receive: Callable[[str, str], bool] | None = None
    # -- routing --
    subscriptions: SubscriptionTree = field(default_factory=SubscriptionTree)
    retained: RetainedTree[Message] = field(default_factory=RetainedTree)
    # topic -> (the tree's Matches it was built from, plan). The tree returns the very
    # same Matches object until a change affects the topic, so identity says "still valid".
    plans: dict[str, tuple[Matches, Plan]] = field(default_factory=dict)
    # topic -> (priority, ttl) from the [push] rules.
    rules_cache: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    # -- timers --
    expiry_timers: dict[str, TimerHandle] = field(default_factory=dict)
    will_timers: dict[str, tuple[TimerHandle, Will]] = field(default_factory=dict)
    purge_timer: TimerHandle | None = None
    # -- $SYS (sys_topics.py) --
    # <node> of the $SYS/brokers/<node>/clients/... presence events; None: not published.
    presence_node: str | None = None

    def persisted(self, session: Session) -> Store | None:
        """The store that keeps ``session``, or None: it ends with its connection, or no store."""
        return self.store if session.expiry_interval else None
