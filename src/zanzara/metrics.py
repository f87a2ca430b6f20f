"""Prometheus metrics: a collector that reads the broker's own counters when scraped.

Nothing here runs per message.  The core already counts what it does
(:class:`~zanzara.core.Stats`), the store times its group commits
(:class:`~zanzara.backends.batch.CommitTimes`), and the gauges (sessions,
queues, inflight) and the queue-depth histogram are computed from the
sessions at scrape time: one pass over them per scrape.  There are no
per-client labels, so the number of series does not grow with the clients.

For an embedder's own registry::

    registry.register(BrokerCollector(broker))

and for serving the text exposition (the admin API's ``/metrics``)::

    metrics = BrokerMetrics(broker)
    body, content_type = metrics.render(request.headers.get("accept"))

Sits below ``broker.py`` and beside the admin API, which serves it: it reads the
core and the store's commit times, and takes a broker as anything with a ``core``.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator, Sequence
from importlib import metadata
from typing import Protocol

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, choose_encoder, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .backends.batch import COMMIT_BUCKETS, CommitTimes
from .core import Core, CoreState, Stats
from .mqtt.enums import ReasonCode

__all__ = ["QUEUE_DEPTH_BUCKETS", "BrokerCollector", "BrokerMetrics"]

# Upper bounds of the session queue-depth histogram (messages; a session's max_queued is
# 1000 by default, so the last bounds catch the sessions configured without one).
QUEUE_DEPTH_BUCKETS = (0, 1, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000)

# CONNACK reason codes that mean "who you say you are did not convince us" (section 3.2.2.2;
# 3.1.1's return codes 4 and 5 are these two, mapped when the CONNACK is encoded).
_AUTH_FAILURES = frozenset(
    {
        ReasonCode.BAD_USER_NAME_OR_PASSWORD,
        ReasonCode.NOT_AUTHORIZED,
        ReasonCode.BAD_AUTHENTICATION_METHOD,
    }
)

# The reasons core/deliveries.py and session.py give for a drop, as label values.
_DROP_REASONS = {
    "queue full": "queue_full",
    "collapsed": "collapsed",
    "session ended": "session_ended",
    "larger than the client's maximum packet size": "packet_too_large",
    "slow subscriber": "slow_subscriber",
}


def _label(text: str) -> str:
    """A reason the code gives, as a label value (a reason added later still gets one)."""
    known = _DROP_REASONS.get(text)
    return known if known is not None else re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _reason_name(code: int) -> str:
    try:
        return ReasonCode(code).name.lower()
    except ValueError:
        return f"0x{code:02x}"


# Stats fields counted for $SYS (bytes by the transports, the rest by the core) -> family and
# help.  Read when present: the collector does not require a core that keeps them.
_OPTIONAL_COUNTERS = {
    "bytes_received": ("zanzara_bytes_received", "Bytes read from client connections."),
    "bytes_sent": ("zanzara_bytes_sent", "Bytes written to client connections."),
    "publishes_refused": (
        "zanzara_publishes_refused",
        "Client PUBLISH refused (an authorizer, or a topic of the broker's own).",
    ),
    "sessions_expired": (
        "zanzara_sessions_expired",
        "Persistent sessions ended because their expiry interval passed.",
    ),
}


def _optional_counters(stats: Stats) -> Iterator[Metric]:
    for field, (name, documentation) in _OPTIONAL_COUNTERS.items():
        count = getattr(stats, field, None)
        if isinstance(count, int):
            yield CounterMetricFamily(name, documentation, value=count)


def _version() -> str:
    try:
        return metadata.version("zanzara")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _cumulative(bounds: Sequence[float], counts: Sequence[int], total: int) -> list[tuple[str, float]]:
    """Per-bucket counts (one more than bounds: the overflow) as Prometheus's cumulative buckets."""
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip(bounds, counts, strict=False):
        running += count
        buckets.append((_bound(bound), running))
    buckets.append(("+Inf", total))
    return buckets


def _bound(bound: float) -> str:
    # As prometheus_client writes its own bucket bounds: floats ("1.0", "0.005").
    return repr(float(bound))


class HasCore(Protocol):
    """A broker, as far as metrics go (``zanzara.Broker`` is one)."""

    @property
    def core(self) -> Core: ...


class BrokerCollector(Collector):
    """A prometheus-client collector over one broker (a :class:`~zanzara.Broker`, or its ``Core``).

    Register it in any :class:`prometheus_client.CollectorRegistry`; each scrape reads the
    counters and walks the sessions once, on the thread that scrapes.  The broker's event loop
    is the best place (the admin API scrapes there).  From another thread (prometheus-client's
    ``start_http_server``) a scrape works too: the sessions are copied in one step before the
    walk, so it never fails, but figures read while the loop runs may disagree by the messages
    of that moment.
    """

    def __init__(self, broker: HasCore | Core) -> None:
        self._core = broker if isinstance(broker, Core) else broker.core
        self._version = _version()

    def describe(self) -> Iterator[Metric]:
        # The families of an empty broker: what a registry checks for clashing names, without
        # reading the live state (registering may happen on any thread, at any time).
        return self._families(CoreState())

    def collect(self) -> Iterator[Metric]:
        return self._families(self._core.state)

    def _families(self, state: CoreState) -> Iterator[Metric]:
        yield from self._info()
        yield from self._gauges(state)
        yield from self._message_counters(state)
        yield from self._connection_counters(state)
        yield from self._store(state)

    def _info(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("zanzara_build_info", "The zanzara version running.", labels=["version"])
        info.add_metric([self._version], 1)
        yield info

    def _gauges(self, state: CoreState) -> Iterator[Metric]:
        # One C-level copy (atomic under the GIL): a scrape from another thread never sees the
        # dict change size under it.
        sessions = tuple(state.sessions.values())
        queued = queued_bytes = inflight = 0
        depths = [0] * (len(QUEUE_DEPTH_BUCKETS) + 1)
        bounds = QUEUE_DEPTH_BUCKETS
        for session in sessions:
            depth = session.queued
            queued += depth
            queued_bytes += session.queued_bytes
            inflight += len(session.inflight)
            depths[bisect.bisect_left(bounds, depth)] += 1
        connected = len(state.clients)
        yield GaugeMetricFamily("zanzara_connections", "Clients connected (CONNACK sent).", value=connected)
        by_state = GaugeMetricFamily(
            "zanzara_sessions", "Sessions, by whether their client is connected.", labels=["state"]
        )
        by_state.add_metric(["connected"], connected)
        by_state.add_metric(["offline"], max(len(sessions) - connected, 0))
        yield by_state
        yield GaugeMetricFamily(
            "zanzara_subscriptions",
            "Subscriptions (a shared subscription counted once per member).",
            value=len(state.subscriptions),
        )
        yield GaugeMetricFamily("zanzara_retained_messages", "Retained messages.", value=len(state.retained))
        yield GaugeMetricFamily(
            "zanzara_queued_messages", "Messages waiting in session queues.", value=queued
        )
        yield GaugeMetricFamily(
            "zanzara_queued_bytes", "Payload bytes of the messages in session queues.", value=queued_bytes
        )
        yield GaugeMetricFamily(
            "zanzara_inflight_messages",
            "QoS 1/2 messages sent and not yet acknowledged by their subscriber.",
            value=inflight,
        )
        yield HistogramMetricFamily(
            "zanzara_session_queue_depth",
            "Sessions by the number of messages in their queue (computed when scraped).",
            buckets=_cumulative(bounds, depths, len(sessions)),
            sum_value=queued,
        )

    def _message_counters(self, state: CoreState) -> Iterator[Metric]:
        stats = state.stats
        received = CounterMetricFamily(
            "zanzara_messages_received", "PUBLISH packets received from clients, by QoS.", labels=["qos"]
        )
        for qos, count in enumerate(stats.received_by_qos):
            received.add_metric([str(qos)], count)
        yield received
        yield CounterMetricFamily(
            "zanzara_messages_sent",
            "PUBLISH packets sent to clients (resends included).",
            value=stats.messages_sent,
        )
        yield from _optional_counters(stats)
        yield CounterMetricFamily(
            "zanzara_deliveries",
            "QoS 1/2 deliveries acknowledged by their subscriber (PUBACK or PUBCOMP).",
            value=stats.deliveries_acknowledged,
        )
        dropped = CounterMetricFamily(
            "zanzara_messages_dropped", "Messages dropped before delivery, by reason.", labels=["reason"]
        )
        # Every known reason from the first scrape on: a series that appears only with its first
        # drop makes rate() miss that drop.
        by_reason = dict.fromkeys(_DROP_REASONS.values(), 0)
        for why, count in tuple(stats.drops.items()):
            label = _label(why)
            by_reason[label] = by_reason.get(label, 0) + count
        for label, count in sorted(by_reason.items()):
            dropped.add_metric([label], count)
        yield dropped
        yield CounterMetricFamily(
            "zanzara_messages_expired",
            "Messages not delivered because their expiry interval passed.",
            value=stats.messages_expired,
        )

    def _connection_counters(self, state: CoreState) -> Iterator[Metric]:
        stats = state.stats
        connects = CounterMetricFamily(
            "zanzara_connects",
            "CONNECTs answered, by result; a refusal by its CONNACK reason code.",
            labels=["result", "reason"],
        )
        connects.add_metric(["accepted", "success"], stats.connections_total)
        auth_failures = 0
        for code, count in sorted(stats.connects_refused.items()):
            connects.add_metric(["refused", _reason_name(code)], count)
            if code in _AUTH_FAILURES:
                auth_failures += count
        yield connects
        yield CounterMetricFamily(
            "zanzara_auth_failures",
            "CONNECTs refused for their credentials or authentication method (also in connects).",
            value=auth_failures,
        )
        yield CounterMetricFamily(
            "zanzara_malformed_packets",
            "Connections closed for a protocol error of the client's.",
            value=stats.malformed_packets,
        )
        yield CounterMetricFamily(
            "zanzara_internal_errors",
            "Connections closed because handling their packet failed in the broker.",
            value=stats.internal_errors,
        )
        yield CounterMetricFamily(
            "zanzara_receive_maximum_exceeded",
            "Times a client sent more unacknowledged QoS 1/2 PUBLISH than its receive maximum.",
            value=stats.receive_maximum_exceeded,
        )

    def _store(self, state: CoreState) -> Iterator[Metric]:
        counts: Sequence[int] = [0] * (len(COMMIT_BUCKETS) + 1)
        total = 0
        seconds = 0.0
        # The durable stores' (backends/batched.py); the memory store commits nothing, and its
        # families stay at zero rather than vanish.
        times = getattr(state.store, "commit_times", None)
        if isinstance(times, CommitTimes):
            counts, total, seconds = times.counts, times.count, times.sum
        yield CounterMetricFamily(
            "zanzara_store_commits", "Batches written to the store (group commits).", value=total
        )
        yield HistogramMetricFamily(
            "zanzara_store_commit_seconds",
            "Time to write one batch of the group commit to the store.",
            buckets=_cumulative(COMMIT_BUCKETS, counts, total),
            sum_value=seconds,
        )


class BrokerMetrics:
    """A registry holding a :class:`BrokerCollector` (and the process's own metrics), rendered.

    ``process``: also the standard ``process_*`` (CPU, memory, file descriptors; Linux),
    ``python_gc_*`` and ``python_info`` families, as a prometheus-client program exports them.
    """

    def __init__(self, broker: HasCore | Core, *, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(BrokerCollector(broker))
        if process:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition and its Content-Type: Prometheus text, or OpenMetrics if ``accept`` asks."""
        if not accept:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
