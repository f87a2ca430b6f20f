"""The time of one Prometheus scrape of a broker holding many sessions.

usage: python bench/metrics_scrape.py [SESSIONS] [MESSAGES] [SCRAPES]

SESSIONS persistent MQTT 5 sessions (default 10,000) are built through the core's own API,
in-process and without sockets: each connects, subscribes to a filter of its own and to
``all/#``, and every other one disconnects (offline, kept for an hour).  MESSAGES QoS 1
messages (default 10) are then published to ``all/x`` through the core: the connected
sessions hold them in flight (their links never acknowledge), the offline ones in their
queues.  Then SCRAPES scrapes (default 50) of a registry holding only BrokerCollector, and
as many of BrokerMetrics (the collector plus the process and GC collectors, what the admin
API's /metrics serves), each rendered to the text exposition as a Prometheus server gets it.
Prints the median and the range of the time per scrape.  Run it pinned to one core
(``taskset -c 0``).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest

from zanzara.core import Admitted, Core
from zanzara.message import Message
from zanzara.metrics import BrokerCollector, BrokerMetrics
from zanzara.mqtt.enums import ProtocolVersion
from zanzara.mqtt.packets import ConnAck, Connect, Packet, Subscribe, Subscription
from zanzara.mqtt.properties import Properties
from zanzara.protocol import PublishEncoder


class NullLink:
    """A ClientLink that takes everything and sends nothing (what the core needs of a connection)."""

    congested = False
    auth_exchange = None
    address = "192.0.2.1:1"
    listener_name = "bench"
    identity_as_username = False
    certificate_username = None
    over_connection_limit = False
    receive_maximum = 65535
    auth_method = None

    def __init__(self) -> None:
        self.is_connecting = True
        self.is_open = False

    def send(self, packet: Packet) -> None:
        pass

    def send_publish(
        self, encoder: PublishEncoder, qos: int, retain: bool, sub_ids: tuple[int, ...], packet_id: int = 0
    ) -> bool:
        return True

    def send_message(self, message: Message, *args: object, **kwargs: object) -> bool:
        return True

    def fits(self, packet: Packet) -> bool:
        return True

    def accept(self, connack: ConnAck, keep_alive: int) -> None:
        self.is_connecting, self.is_open = False, True

    def refuse(self, reason_code: int, reason: str | None = None) -> None:
        raise AssertionError(f"refused: 0x{reason_code:02x} {reason}")

    def disconnect(self, reason_code: int, reason: str | None = None) -> None:
        self.is_open = False

    def close(self) -> None:
        self.is_open = False


def build(sessions: int, messages: int) -> Core:
    core = Core()
    props = Properties(session_expiry_interval=3600)
    for i in range(sessions):
        connect = Connect(
            protocol_version=ProtocolVersion.MQTT5, clean_start=False, client_id=f"dev-{i}", properties=props
        )
        result = core.connecting(NullLink(), connect)
        assert isinstance(result, Admitted), result
        client = result.client
        subs = (Subscription(topic_filter=f"dev/{i}/#", qos=1), Subscription(topic_filter="all/#", qos=1))
        assert core.handle(client, Subscribe(packet_id=1, subscriptions=subs)) is None
        if i % 2:
            core.disconnected(client)
    for n in range(messages):
        core.publish("all/x", f"message {n}".encode(), qos=1)
    return core


def timed(scrape: Callable[[], bytes], scrapes: int) -> tuple[list[float], int]:
    times = []
    size = 0
    for _ in range(scrapes):
        started = time.perf_counter()
        size = len(scrape())
        times.append(time.perf_counter() - started)
    return times, size


def report(what: str, times: list[float], size: int) -> None:
    ms = sorted(t * 1000 for t in times)
    print(
        f"{what}: median {statistics.median(ms):.2f} ms per scrape [{ms[0]:.2f}-{ms[-1]:.2f}], {size} bytes"
    )


async def main(sessions: int, messages: int, scrapes: int) -> None:
    started = time.perf_counter()
    core = build(sessions, messages)
    state = core.state
    queued = sum(s.queued for s in state.sessions.values())
    inflight = sum(len(s.inflight) for s in state.sessions.values())
    print(
        f"{len(state.sessions)} sessions ({len(state.clients)} connected), "
        f"{len(state.subscriptions)} subscriptions, {queued} queued, {inflight} inflight "
        f"(built in {time.perf_counter() - started:.1f} s)"
    )
    registry = CollectorRegistry()
    registry.register(BrokerCollector(core))
    report("BrokerCollector alone", *timed(lambda: generate_latest(registry), scrapes))
    metrics = BrokerMetrics(core)
    report("BrokerMetrics (with process, GC)", *timed(lambda: metrics.render()[0], scrapes))
    await core.close()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    defaults = [10_000, 10, 50]
    sessions, messages, scrapes = args + defaults[len(args) :]
    asyncio.run(main(sessions, messages, scrapes))
