"""The ``$SYS`` topics: the broker's statistics, published as Mosquitto publishes them.

Every ``sys_interval`` seconds (and once at start) :meth:`SysTopics.update`
reads the counters in :class:`~.state.Stats` and the sizes of the broker's
state, and publishes each ``$SYS/broker/...`` topic whose value changed,
retained, under Mosquitto 2's names and formats (its ``src/sys_tree.c``):
integers in decimal, the uptime as ``"N seconds"``, loads with two decimals.
A ``maximum`` is published only when it grows.

The loads are Mosquitto's exponentially weighted averages, per minute: at
each update, with ``dt`` the seconds since the last one and ``d`` what the
counter grew by meanwhile, ``rate = d * 60 / dt`` and ``load = rate +
exp(-dt / window) * (load - rate)`` for windows of 1, 5 and 15 minutes;
published when it moves by 0.01 or more.

What zanzara knows and Mosquitto does not publish goes under
``$SYS/broker/zanzara/``: a subscriber to ``$SYS/broker/#`` gets it, and a
name Mosquitto may add one day cannot clash with one of ours.

With ``sys_presence_events``, ``$SYS/brokers/<node>/clients/<id>/connected``
and ``.../disconnected`` carry a JSON object as clients come and go (not
retained; EMQX's names, as Mosquitto has none).

The messages are QoS 0 (Mosquitto sends QoS 2): they are snapshots, and an
offline session should not queue stale ones.  Retained copies are not stored
(``routing.route``): the tree describes the running broker, as in Mosquitto.
Time comes from ``state.clock`` and ``state.scheduler``.

Must not import the transports, the back-ends or the server.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from ..hooks import ClientInfo
from ..mqtt.properties import EMPTY_PROPERTIES
from . import routing
from .push_rules import make_message
from .state import CoreState, Stats, TimerHandle

__all__ = ["SysTopics", "presence"]

PREFIX = "$SYS/broker/"
ZANZARA = PREFIX + "zanzara/"

# Counters with a load average: (topic under load/, what it counts).
_LOADS: tuple[tuple[str, Callable[[Stats], int]], ...] = (
    ("messages/received", lambda s: s.packets_received),
    ("messages/sent", lambda s: s.packets_sent),
    ("publish/dropped", lambda s: s.messages_dropped),
    ("publish/received", lambda s: s.messages_received),
    ("publish/sent", lambda s: s.messages_sent),
    ("bytes/received", lambda s: s.bytes_received),
    ("bytes/sent", lambda s: s.bytes_sent),
    ("sockets", lambda s: s.sockets_opened),
    ("connections", lambda s: s.connects_received),
)
# Window of each average, in seconds.
_WINDOWS = (("1min", 60.0), ("5min", 300.0), ("15min", 900.0))

# Short names for the reasons deliveries.py gives, as topic levels.
_DROP_NAMES = {
    "slow subscriber": "slow_subscriber",
    "queue full": "queue_full",
    "collapsed": "collapsed",
    "session ended": "session_ended",
    "larger than the client's maximum packet size": "too_large",
}


def _version() -> str:
    try:
        return importlib.metadata.version("zanzara")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "unknown"


@dataclass(eq=False, slots=True)
class SysTopics:
    """Publishes ``$SYS/broker/...`` every ``interval`` seconds; one per broker."""

    state: CoreState
    interval: float
    started_at: float = 0.0
    # topic -> the payload last published there
    published: dict[str, bytes] = field(default_factory=dict)
    # counter -> its value at the last update, for the loads
    last_counts: dict[str, int] = field(default_factory=dict)
    # load topic -> its current average (published when it moves by 0.01)
    loads: dict[str, float] = field(default_factory=dict)
    last_update: float = 0.0
    clients_maximum: int = 0
    timer: TimerHandle | None = None

    def start(self) -> None:
        """Publish the version and a first update now, then every ``interval`` seconds."""
        state = self.state
        self.started_at = self.last_update = state.clock()
        self._publish(PREFIX + "version", f"zanzara {_version()}")
        self.last_counts = {name: count(state.stats) for name, count in _LOADS}
        for name, _ in _LOADS:
            for window, _ in _WINDOWS:
                topic = f"{PREFIX}load/{name}/{window}"
                self.loads[topic] = 0.0
                self._publish(topic, "0.00")
        self.update()

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def update(self) -> None:
        """Publish what changed since the last update, then schedule the next."""
        state = self.state
        now = state.clock()
        self._publish(PREFIX + "uptime", f"{int(now - self.started_at)} seconds")
        self._update_loads(now)
        for topic, value in self._values().items():
            self._publish(topic, str(value))
        self.timer = state.scheduler.call_later(self.interval, self.update)

    def _update_loads(self, now: float) -> None:
        elapsed = now - self.last_update
        if elapsed <= 0:
            return
        self.last_update = now
        stats = self.state.stats
        for name, count in _LOADS:
            value = count(stats)
            rate = (value - self.last_counts[name]) * 60.0 / elapsed
            self.last_counts[name] = value
            for window, seconds in _WINDOWS:
                topic = f"{PREFIX}load/{name}/{window}"
                old = self.loads[topic]
                new = rate + math.exp(-elapsed / seconds) * (old - rate)
                self.loads[topic] = new
                if abs(new - old) >= 0.01:
                    self._publish(topic, f"{new:.2f}")

    def _values(self) -> dict[str, int]:
        """Every integer topic and its value now."""
        state = self.state
        stats = state.stats
        subscriptions = shared = queued = queued_bytes = inflight = inflight_bytes = 0
        for session in state.sessions.values():  # once per interval: O(sessions + subscriptions)
            subscriptions += len(session.subscriptions)
            shared += sum(1 for entry in session.subscriptions.values() if entry.share_group is not None)
            queued += session.queued
            # Session keeps its queue's payload bytes for max_queued_bytes; no public name yet.
            queued_bytes += session._queued_bytes
            inflight += len(session.inflight)
            inflight_bytes += sum(len(out.message.payload) for out in session.inflight.values())
        retained = len(state.retained)
        # A walk of every retained message each interval: its bytes are not kept as it changes.
        retained_bytes = sum(len(message.payload) for _, message in state.retained.items())
        total = len(state.sessions)
        connected = len(state.clients)
        self.clients_maximum = max(self.clients_maximum, total)  # so published only as it grows
        values = {
            "clients/total": total,
            "clients/maximum": self.clients_maximum,
            "clients/connected": connected,
            "clients/active": connected,
            "clients/disconnected": total - connected,
            "clients/inactive": total - connected,
            "clients/expired": stats.sessions_expired,
            # Messages held: queued and in flight for sessions, and retained (Mosquitto
            # counts each message once; ours may be held by several sessions).
            "messages/stored": queued + inflight + retained,
            "store/messages/count": queued + inflight + retained,
            "store/messages/bytes": queued_bytes + inflight_bytes + retained_bytes,
            "subscriptions/count": subscriptions,
            "shared_subscriptions/count": shared,
            "retained messages/count": retained,
            "messages/received": stats.packets_received,
            "messages/sent": stats.packets_sent,
            "publish/messages/received": stats.messages_received,
            "publish/messages/sent": stats.messages_sent,
            "publish/messages/dropped": stats.messages_dropped,
            "bytes/received": stats.bytes_received,
            "bytes/sent": stats.bytes_sent,
            "zanzara/messages/inflight": inflight,
            "zanzara/queue/messages": queued,
            "zanzara/queue/bytes": queued_bytes,
            "zanzara/messages/expired": stats.messages_expired,
            "zanzara/publish/refused": stats.publishes_refused,
            "zanzara/connections/total": stats.connections_total,
        }
        for why, count in stats.drops.items():
            values["zanzara/messages/dropped/" + _DROP_NAMES.get(why, why.replace(" ", "_"))] = count
        return {PREFIX + name: value for name, value in values.items()}

    def _publish(self, topic: str, text: str) -> None:
        payload = text.encode()
        if self.published.get(topic) == payload:
            return
        self.published[topic] = payload
        state = self.state
        routing.route(state, make_message(state, topic, payload, 0, True, EMPTY_PROPERTIES, None))


def presence(state: CoreState, node: str, client: ClientInfo, event: str, **fields: object) -> None:
    """``$SYS/brokers/<node>/clients/<id>/<event>`` with a JSON object (not retained)."""
    cid = client.client_id
    # A client id is any string: levels and wildcards are escaped so the topic is one valid level.
    level = cid.replace("%", "%25").replace("/", "%2F").replace("+", "%2B").replace("#", "%23")
    body = {
        "client_id": cid,
        "username": client.username,
        "address": client.address,
        "listener": client.listener,
        "protocol_version": int(client.protocol_version),
        "ts": state.clock(),
        **fields,
    }
    topic = f"$SYS/brokers/{node}/clients/{level}/{event}"
    payload = json.dumps(body, separators=(",", ":")).encode()
    routing.route(state, make_message(state, topic, payload, 0, False, EMPTY_PROPERTIES, None))
