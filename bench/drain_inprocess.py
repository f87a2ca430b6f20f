"""The broker's own cost of draining offline queues, without sockets or a load generator.

usage: python bench/drain_inprocess.py [sqlite|memory|no-tracking|redis] [SESSIONS] [MESSAGES] [PROFILE]

SESSIONS persistent 3.1.1 sessions (default 1000) each subscribe to a topic of their own and
disconnect; MESSAGES QoS 1 messages (default 100) are published to each through the embedded
API; then every session reconnects and acknowledges what it gets, a window at a time, as the
shared load generator's `offline` scenario does.  Connections are in-memory transports fed
through the broker's protocol factory, so the figure is the broker's event-loop time per
delivery (PUBLISH out, PUBACK in, store bookkeeping and receipts), not the kernel's.  Run it
pinned to one core (`taskset -c 0`); with PROFILE it writes a cProfile of the drain there.
Used to pick what to optimise; the ratios against Mosquitto come from bench/durable.sh.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import sys
import tempfile
import time
from typing import Any

import uvloop
from redis import asyncio as aioredis

from zanzara import Broker
from zanzara.config import Config
from zanzara.mqtt.codec import encode
from zanzara.mqtt.enums import ProtocolVersion
from zanzara.mqtt.packets import Connect, Disconnect, PubAck, Subscribe, Subscription
from zanzara.server import tune_gc
from zanzara.transports.connection import MqttConnection

V311 = ProtocolVersion.MQTT311
CONFIGS: dict[str, dict[str, Any]] = {
    "sqlite": {},
    "memory": {"storage": {"backend": "memory"}},
    "no-tracking": {"push": {"track_deliveries": False}},
    # REDIS_URL: a redis-server to use (bench/durable.sh starts one on 16379); its db is emptied.
    "redis": {
        "storage": {"backend": "redis", "url": os.environ.get("REDIS_URL", "redis://127.0.0.1:16379/0")}
    },
}


class MemoryTransport:
    """What MqttConnection uses of an asyncio transport; keeps what the broker writes."""

    def __init__(self, protocol: MqttConnection) -> None:
        self.protocol = protocol
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    abort = close

    def can_write_eof(self) -> bool:
        return False  # no lingering close: the connection closes at once, as before it existed

    def write_eof(self) -> None:
        raise NotImplementedError

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def publish_ids(chunks: list[bytes]) -> list[int]:
    """The packet ids of the QoS 1 PUBLISH packets in what the broker wrote (3.1.1)."""
    buf = b"".join(chunks)
    ids = []
    p = 0
    while p < len(buf):
        first, q, length, shift = buf[p], p + 1, 0, 0
        while True:
            byte = buf[q]
            q += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        if first >> 4 == 3:
            topic_length = int.from_bytes(buf[q : q + 2], "big")
            ids.append(int.from_bytes(buf[q + 2 + topic_length : q + 4 + topic_length], "big"))
        p = q + length
    return ids


async def settle(iterations: int = 3) -> None:
    for _ in range(iterations):
        await asyncio.sleep(0)


async def main(store: str, sessions: int, messages: int, profile: str | None) -> None:
    os.chdir(tempfile.mkdtemp(prefix="zanzara-drain-"))
    if store == "redis":
        client = aioredis.from_url(CONFIGS["redis"]["storage"]["url"])
        await client.flushdb()
        await client.aclose()
    config = Config.model_validate({"listeners": [{"host": "127.0.0.1", "port": 0}], **CONFIGS[store]})
    async with Broker(config) as broker:
        make = broker._factory(config.listeners[0], 0)

        def connect(n: int) -> tuple[MqttConnection, MemoryTransport]:
            conn = make()
            transport = MemoryTransport(conn)
            conn.connection_made(transport)  # type: ignore[arg-type]
            conn.data_received(encode(Connect(client_id=f"d{n}", clean_start=False, keep_alive=60), V311))
            return conn, transport

        for n in range(sessions):
            conn, _ = connect(n)
            await settle()
            sub = Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter=f"d/{n}", qos=1),))
            conn.data_received(encode(sub, V311))
            await settle(5)
            conn.data_received(encode(Disconnect(), V311))
            await settle()
        for _ in range(messages):
            await asyncio.gather(*(broker.publish(f"d/{n}", b"x" * 32, qos=1) for n in range(sessions)))
        await asyncio.sleep(1.0)  # the publish phase's writes are done before the drain
        acks = {pid: encode(PubAck(packet_id=pid), V311) for pid in range(1, 65536)}
        profiler = cProfile.Profile() if profile else None
        if profiler is not None:
            profiler.enable()
        started, cpu = time.perf_counter(), time.thread_time()
        pending = [connect(n) for n in range(sessions)]
        await settle(10)
        got = 0
        while got < sessions * messages:
            for conn, transport in pending:
                chunks, transport.written = transport.written, []
                ids = publish_ids(chunks)
                got += len(ids)
                if ids:
                    conn.data_received(b"".join(acks[i] for i in ids))
            await settle(2)
        elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        print(
            f"{store} drain {sessions}x{messages}: {elapsed:.3f} s, event-loop thread CPU {cpu:.3f} s,"
            f" {1e6 * elapsed / got:.2f} us per delivery"
        )


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    tune_gc()
    asyncio.run(
        main(
            args[0] if args else "sqlite",
            int(args[1]) if len(args) > 1 else 1000,
            int(args[2]) if len(args) > 2 else 100,
            args[3] if len(args) > 3 else None,
        )
    )
