"""The Prometheus collector (zanzara/metrics.py): scraped from a real broker while paho clients talk to it.

Each scrape is parsed with prometheus-client's own parser, as a Prometheus server reads it; the
counters must move when traffic flows, and the gauges must say what the broker holds.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from zanzara import Broker, BrokerCollector, BrokerMetrics, ConnectRequest, ReasonCode
from zanzara.config import Config, MqttConfig, StorageConfig
from zanzara.core import Stats

from brokerthread import BrokerThread
from clients import V5, V311, PahoClient

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

TYPES = {
    "zanzara_build_info": "gauge",
    "zanzara_connections": "gauge",
    "zanzara_sessions": "gauge",
    "zanzara_subscriptions": "gauge",
    "zanzara_retained_messages": "gauge",
    "zanzara_queued_messages": "gauge",
    "zanzara_queued_bytes": "gauge",
    "zanzara_inflight_messages": "gauge",
    "zanzara_session_queue_depth": "histogram",
    "zanzara_messages_received": "counter",
    "zanzara_messages_sent": "counter",
    "zanzara_deliveries": "counter",
    "zanzara_messages_dropped": "counter",
    "zanzara_messages_expired": "counter",
    "zanzara_connects": "counter",
    "zanzara_auth_failures": "counter",
    "zanzara_malformed_packets": "counter",
    "zanzara_internal_errors": "counter",
    "zanzara_receive_maximum_exceeded": "counter",
    "zanzara_store_commits": "counter",
    "zanzara_store_commit_seconds": "histogram",
}


def optional_families() -> set[str]:
    """The families of the Stats fields the $SYS work adds, where this core has them."""
    from zanzara.metrics import _OPTIONAL_COUNTERS

    return {name for field, (name, _) in _OPTIONAL_COUNTERS.items() if hasattr(Stats, field)}


class RefuseMallory:
    """Refuses the user "mallory" for her password, abstains on everyone else."""

    async def authenticate(self, request: ConnectRequest) -> ReasonCode | None:
        if request.client.username == "mallory":
            return ReasonCode.BAD_USER_NAME_OR_PASSWORD
        return None


def _setup(broker: Broker) -> None:
    broker.add_authenticator(RefuseMallory())


@pytest.fixture
def sqlite_broker(tmp_path) -> Iterator[BrokerThread]:
    config = Config(
        storage=StorageConfig(backend="sqlite", path=str(tmp_path / "z.db")),
        mqtt=MqttConfig(max_queued_messages=3),
        sys_interval=0,  # no $SYS topics: the retained gauge counts the test's own only
    )
    with BrokerThread(config, setup=_setup) as b:
        yield b


def scrape(broker: BrokerThread, registry: CollectorRegistry) -> tuple[dict[str, str], Samples]:
    """One scrape on the broker's loop (as the admin API does): family types, and every sample."""
    text = broker.call(lambda: generate_latest(registry)).decode()
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def registry_for(broker: BrokerThread) -> CollectorRegistry:
    """An embedder's own registry, with the collector registered as the README says."""
    registry = CollectorRegistry()
    assert broker.broker is not None
    registry.register(BrokerCollector(broker.broker))
    return registry


def test_families_and_types(sqlite_broker):
    types, samples = scrape(sqlite_broker, registry_for(sqlite_broker))
    assert {name: kind for name, kind in types.items() if name not in optional_families()} == TYPES
    assert {types[name] for name in optional_families()} <= {"counter"}
    # Counters are exposed with _total, histograms with cumulative buckets ending at +Inf.
    assert value(samples, "zanzara_messages_received_total", qos="1") == 0
    assert value(samples, "zanzara_store_commit_seconds_bucket", le="+Inf") == value(
        samples, "zanzara_store_commit_seconds_count"
    )
    assert not any(name.startswith(("process_", "python_")) for name, _ in samples)


def test_counters_move_with_traffic(sqlite_broker):
    broker = sqlite_broker
    registry = registry_for(broker)
    _, before = scrape(broker, registry)

    # A persistent subscriber goes offline: what is published meanwhile waits in its queue,
    # beyond max_queued_messages = 3 the oldest is dropped ("queue full").
    offline = PahoClient(broker.port, "metrics-offline", version=V311, clean=False)
    assert offline.subscribe("m/#", 1) == [1]
    offline.disconnect()
    broker.wait_offline("metrics-offline")

    sub = PahoClient(broker.port, version=V5)
    assert sub.subscribe("m/#", 2) == [2]
    pub = PahoClient(broker.port, version=V5)
    for qos in (0, 1, 2, 1, 1):
        pub.publish("m/x", f"qos{qos}".encode(), qos)
    pub.publish("m/retained", b"kept", 1, retain=True)
    got = sub.expect_n(6)
    assert sorted(m.payload for m in got).count(b"qos1") == 3
    refused = PahoClient(broker.port, version=V5, username="mallory", password="x", connect=False)
    refused.connect()
    assert refused.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD
    refused.disconnect()
    # The subscriber's last acknowledgement may still be on its way: wait for the broker to see it.
    for client in (sub, pub):
        client.disconnect()
        broker.wait_offline(client.client_id)
    _, after = scrape(broker, registry)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("zanzara_messages_received_total", qos="0") == 1
    assert moved("zanzara_messages_received_total", qos="1") == 4
    assert moved("zanzara_messages_received_total", qos="2") == 1
    # All 6 to the online subscriber; the offline session's wait in its queue.
    assert moved("zanzara_messages_sent_total") == 6
    # The online subscriber's QoS 1/2 (5 of them) ended with its PUBACK or PUBCOMP.
    assert moved("zanzara_deliveries_total") == 5
    # The offline session's queue of 3 took the 5 QoS 1/2 messages: 2 dropped as the queue filled.
    assert moved("zanzara_messages_dropped_total", reason="queue_full") == 2
    assert moved("zanzara_connects_total", result="accepted", reason="success") == 3
    assert value(after, "zanzara_connects_total", result="refused", reason="bad_user_name_or_password") == 1
    assert moved("zanzara_auth_failures_total") == 1
    # Counted for $SYS by the transports where the core keeps them (not on every branch).
    for kept in ("bytes_received", "bytes_sent"):
        if hasattr(Stats, kept):
            assert moved(f"zanzara_{kept}_total") > 0
    # The subscription, the queue and the retained message went through the SQLite store.
    assert moved("zanzara_store_commits_total") > 0
    assert moved("zanzara_store_commit_seconds_count") == moved("zanzara_store_commits_total")
    assert moved("zanzara_store_commit_seconds_sum") > 0

    # Gauges: what the broker holds now (everyone gone, one offline session with 3 queued).
    assert value(after, "zanzara_connections") == 0
    assert value(after, "zanzara_sessions", state="offline") == 1
    assert value(after, "zanzara_sessions", state="connected") == 0
    assert value(after, "zanzara_subscriptions") == 1
    assert value(after, "zanzara_retained_messages") == 1
    assert value(after, "zanzara_queued_messages") == 3
    # The newest three kept, the oldest dropped (session.py): b"qos1", b"qos1", b"kept".
    assert value(after, "zanzara_queued_bytes") == 12
    assert value(after, "zanzara_session_queue_depth_count") == 1
    assert value(after, "zanzara_session_queue_depth_bucket", le="1.0") == 0
    assert value(after, "zanzara_session_queue_depth_bucket", le="5.0") == 1
    assert value(after, "zanzara_session_queue_depth_sum") == 3


def test_gauges_while_connected(broker):
    """Connections, inflight (a client that does not acknowledge) and sessions by state."""
    registry = registry_for(broker)
    sub = PahoClient(broker.port, version=V5, manual_ack=True)
    assert sub.subscribe("g/#", 1) == [1]
    pub = PahoClient(broker.port, version=V5)
    pub.publish("g/1", b"unacked", 1)
    sub.expect()
    _, samples = scrape(broker, registry)
    assert value(samples, "zanzara_connections") == 2
    assert value(samples, "zanzara_sessions", state="connected") == 2
    assert value(samples, "zanzara_sessions", state="offline") == 0
    assert value(samples, "zanzara_inflight_messages") == 1
    # The memory store commits nothing: its families are there, at zero.
    assert value(samples, "zanzara_store_commits_total") == 0
    pub.disconnect()
    sub.disconnect()


def test_broker_metrics_renders_text_and_openmetrics(broker):
    assert broker.broker is not None
    metrics = BrokerMetrics(broker.broker)
    body, content_type = broker.call(metrics.render)
    assert content_type.startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(body.decode())}
    assert {"zanzara_connections", "zanzara_messages_received", "process_cpu_seconds"} <= names
    body, content_type = broker.call(lambda: metrics.render("application/openmetrics-text; version=1.0.0"))
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_collector_over_a_core_alone():
    """Embedders holding only the core (and the benchmark) get the same families."""
    from zanzara.core import Core

    registry = CollectorRegistry()
    registry.register(BrokerCollector(Core()))
    names = {family.name for family in text_string_to_metric_families(generate_latest(registry).decode())}
    assert names == set(TYPES) | optional_families()


def test_registering_twice_in_one_registry_is_refused():
    """describe() names the families, so a registry refuses a second collector with the same names."""
    from zanzara.core import Core

    registry = CollectorRegistry()
    registry.register(BrokerCollector(Core()))
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(BrokerCollector(Core()))


def test_commit_times_buckets_are_upper_bounds():
    """A batch that took exactly a bound is in that bound's bucket (Prometheus's le: less or equal)."""
    from zanzara.backends.batch import COMMIT_BUCKETS, CommitTimes

    times = CommitTimes()
    times.observe(COMMIT_BUCKETS[0])
    times.observe(COMMIT_BUCKETS[-1] * 2)
    assert times.counts[0] == 1
    assert times.counts[-1] == 1
    assert times.count == 2
    assert times.sum == COMMIT_BUCKETS[0] + COMMIT_BUCKETS[-1] * 2
