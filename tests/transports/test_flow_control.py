"""Flow control between sockets and the core: no client can silence, stall or cut off another.

Three families, each through real sockets (raw bytes where timing matters, paho-mqtt and MQTT.js
where the everyday client is the point):

- a connection that dies mid-write never keeps the others of its write batch from being written;
- a publisher that pipelines QoS 1/2 beyond ``receive_maximum`` is slowed (reading pauses), never
  disconnected, unless the strict v5 setting asks for DISCONNECT 0x93 (MQTT 5.0 section 4.9);
- a subscriber that stops reading loses its own QoS 0 messages and queues its QoS 1/2 ones, and a
  publisher is never paused because of it.
"""

from __future__ import annotations

import json
import resource
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from zanzara.config import Config, ListenerConfig, MqttConfig, StorageConfig
from zanzara.mqtt.codec import encode
from zanzara.mqtt.enums import ProtocolVersion, ReasonCode
from zanzara.mqtt.packets import (
    ConnAck,
    Connect,
    Disconnect,
    PingReq,
    PingResp,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    Subscription,
    Will,
)
from zanzara.transports.flusher import Flusher

from brokerthread import BrokerThread
from clients import V5, V311, PahoClient, RawClient
from peers import JS_DIR

V5_WIRE = ProtocolVersion.MQTT5
V311_WIRE = ProtocolVersion.MQTT311
LOOPS = ["uvloop", "asyncio"]


def memory(**mqtt: Any) -> Config:
    return Config(storage=StorageConfig(backend="memory"), mqtt=MqttConfig(**mqtt))


def sqlite(tmp_path: Path, *listeners: ListenerConfig, **mqtt: Any) -> Config:
    """The default store: acknowledgements wait for a commit, so unanswered PUBLISH pile up.

    The queue bound is raised so that a subscriber's queue never drops what a test counts.
    """
    mqtt.setdefault("max_queued_messages", 10_000)
    return Config(
        storage=StorageConfig(backend="sqlite", path=str(tmp_path / "z.db")),
        listeners=listeners or (ListenerConfig(),),
        mqtt=MqttConfig(**mqtt),
    )


def wait_until(condition: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def reset(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a phone that loses its network mid-write."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def raw_subscriber(
    port: int, topic: str, qos: int, version: ProtocolVersion = V5_WIRE, **kw: Any
) -> RawClient:
    raw = RawClient(port, version)
    assert raw.connect(**kw).reason_code == 0  # type: ignore[attr-defined]
    raw.send(Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter=topic, qos=qos),)))
    assert isinstance(raw.recv(), SubAck)
    return raw


def stuck_subscriber(port: int, topic: str, qos: int, client_id: str, **connect: Any) -> socket.socket:
    """A raw client that subscribes, then never reads again (a small receive buffer fills fast)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    sock.sendall(encode(Connect(protocol_version=V311_WIRE, client_id=client_id, **connect), V311_WIRE))
    sub = Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter=topic, qos=qos),))
    sock.sendall(encode(sub, V311_WIRE))
    # CONNACK (4 bytes) and SUBACK (5 bytes), read exactly, nothing more ever.
    got = b""
    while len(got) < 9:
        got += sock.recv(9 - len(got))
    assert got[:4] == b"\x20\x02\x00\x00" and got[4] == 0x90, got
    return sock


def small_send_buffer(b: BrokerThread, client_id: str) -> None:
    """Shrink the broker's kernel send buffer for ``client_id`` (it grows to megabytes on loopback),
    so that a few hundred KiB fill the socket and the broker's own buffering is what is tested."""

    def shrink() -> None:
        sock = b.core.clients[client_id].link.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)

    b.call(shrink)


# --- one dead connection never silences the others --------------------------------------------------


class _FakeConnection:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.flushed = 0
        self.aborted = False

    def flush(self) -> None:
        self.flushed += 1
        if self.fail:
            raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")

    def abort(self) -> None:
        self.aborted = True

    def who(self) -> str:
        return "fake"


def test_a_failing_flush_is_isolated_and_the_rest_of_the_batch_is_written() -> None:
    """The worst bug we knew: one transport.write() raising left every later connection of the batch
    marked dirty, never to be written again."""
    loop = _NoLoop()
    flusher = Flusher(loop)  # type: ignore[arg-type]
    conns = [_FakeConnection(), _FakeConnection(fail=True), _FakeConnection(), _FakeConnection()]
    for conn in conns:
        flusher.mark(conn)  # type: ignore[arg-type]
    flusher.run()
    assert [c.flushed for c in conns] == [1, 1, 1, 1]
    assert [c.aborted for c in conns] == [False, True, False, False]
    # And the flusher still schedules later batches.
    flusher.mark(conns[0])  # type: ignore[arg-type]
    assert loop.scheduled == 2


class _NoLoop:
    scheduled = 0

    def call_soon(self, callback: Any) -> None:
        self.scheduled += 1


@pytest.mark.parametrize("loop", LOOPS)
def test_takeover_right_after_a_drop_gets_its_connack(tmp_path: Path, loop: str) -> None:
    """A phone drops (reset) with a PUBACK still waiting for its commit; the same client id reconnects
    at once and the takeover writes DISCONNECT 0x8E [MQTT-3.1.4-3] to the dead connection.  The new
    connection must get its CONNACK, round after round."""
    with BrokerThread(sqlite(tmp_path), loop=loop) as b:
        for i in range(100):
            old = RawClient(b.port, V5_WIRE)
            assert old.connect("phone").reason_code == 0  # type: ignore[attr-defined]
            new = RawClient(b.port, V5_WIRE)
            old.send(Publish(topic="up/phone", payload=b"%d" % i, qos=1, packet_id=1))
            # The CONNECT and the reset reach the broker together, in either order.
            new.send(Connect(protocol_version=V5_WIRE, client_id="phone"))
            reset(old.sock)
            connack = new.recv()
            assert isinstance(connack, ConnAck) and connack.reason_code == 0, (i, connack)
            new.send(PingReq())
            assert isinstance(new.recv(), PingResp)
            reset(new.sock)
        healthy = RawClient(b.port, V5_WIRE)
        assert healthy.connect("after").reason_code == 0  # type: ignore[attr-defined]
        healthy.close()


@pytest.mark.parametrize("loop", LOOPS)
def test_a_reset_during_fanout_does_not_silence_a_healthy_subscriber(loop: str) -> None:
    """Subscribers resetting their connections while a publisher streams to them: the healthy
    subscriber still gets every message, and its PINGREQ is answered."""
    with BrokerThread(memory(), loop=loop) as b:
        healthy = raw_subscriber(b.port, "fan/#", 0)
        inbox: list[Any] = []
        reading = threading.Thread(target=_read_all, args=(healthy, inbox), daemon=True)
        reading.start()
        publisher = RawClient(b.port, V5_WIRE)
        assert publisher.connect("fan-publisher").reason_code == 0  # type: ignore[attr-defined]
        done = threading.Event()
        sent = [0]

        def stream() -> None:
            # Closed loop: at most 200 messages ahead of the healthy subscriber, which must get all.
            while not done.is_set():
                n = sent[0]
                while n - len(inbox) > 200 and not done.is_set():
                    time.sleep(0.001)
                publisher.send(
                    b"".join(
                        encode(Publish(topic="fan/x", payload=b"%d" % (n + k)), V5_WIRE) for k in range(20)
                    )
                )
                sent[0] = n + 20

        streaming = threading.Thread(target=stream)
        streaming.start()
        try:
            for _ in range(30):
                doomed = [raw_subscriber(b.port, "fan/#", 0) for _ in range(5)]
                for raw in doomed:
                    reset(raw.sock)
        finally:
            done.set()
            streaming.join()
        total = sent[0]
        # The publisher's PINGRESP says the broker has handled every PUBLISH before it.
        publisher.send(PingReq())
        assert isinstance(publisher.recv(), PingResp)
        healthy.send(PingReq())
        wait_until(lambda: any(isinstance(p, PingResp) for p in inbox), "PINGRESP to the healthy subscriber")
        payloads = [int(p.payload) for p in inbox if isinstance(p, Publish)]
        assert payloads == list(range(total))
        healthy.close()
        publisher.close()


def _read_all(raw: RawClient, inbox: list[Any]) -> None:
    try:
        while True:
            inbox.append(raw.recv(timeout=30))
    except (AssertionError, OSError):
        return


# --- a publisher that pipelines is slowed, never cut off ---------------------------------------------


def test_a_311_publisher_streaming_5000_qos1_without_reading_is_never_cut_off(tmp_path: Path) -> None:
    """3.1.1 has no Receive Maximum: a client with more than receive_maximum unacknowledged PUBLISH
    broke no rule.  The broker stops reading from it until its PUBACKs (each after a commit) catch up."""
    count = 5000
    with BrokerThread(sqlite(tmp_path)) as b:
        # A persistent subscriber: its queue entries are written, so each PUBACK waits for a commit.
        sink = PahoClient(b.port, version=V311, clean=False)
        sink.subscribe("stream/#", qos=1)
        raw = RawClient(b.port, V311_WIRE)
        assert raw.connect("streamer").reason_code == 0  # type: ignore[attr-defined]
        stream = b"".join(
            encode(Publish(topic="stream/a", payload=b"%d" % i, qos=1, packet_id=i % 65535 + 1), V311_WIRE)
            for i in range(count)
        )
        raw.send(stream)  # blocks while the broker pauses reading: TCP pushes back
        acks = [raw.recv(timeout=30) for _ in range(count)]
        assert all(isinstance(a, PubAck) for a in acks)
        assert [a.packet_id for a in acks] == [i % 65535 + 1 for i in range(count)]  # type: ignore[union-attr]
        got = [int(m.payload) for m in sink.expect_n(count, timeout=30)]
        assert got == list(range(count))
        # It did go beyond the window (so the pause was exercised), and was not disconnected for it.
        assert b.call(lambda: b.core.stats.receive_maximum_exceeded) == 1
        raw.send(PingReq())
        assert isinstance(raw.recv(), PingResp)
        raw.close()
        sink.disconnect()


@pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5"])
def test_paho_with_1000_inflight_publishes_everything(tmp_path: Path, version: int) -> None:
    """paho-mqtt with max_inflight_messages_set(1000): 1,000 QoS 1 and 1,000 QoS 2 without waiting;
    every on_publish called, QoS 2 delivered exactly once, nothing lost."""
    with BrokerThread(sqlite(tmp_path)) as b:
        sink = PahoClient(b.port, version=version, clean=False, session_expiry=60)
        sink.subscribe("pipe/#", qos=2)
        pub = PahoClient(b.port, version=version, connect=False)
        pub.client.max_inflight_messages_set(1000)
        pub.client.max_queued_messages_set(0)
        pub.connect()
        infos = [
            pub.publish(f"pipe/{qos}", b"%d" % i, qos=qos, wait=False) for qos in (1, 2) for i in range(1000)
        ]
        for info in infos:
            info.wait_for_publish(30)
        assert all(info.is_published() for info in infos)
        got = sink.expect_n(2000, timeout=30)
        by_qos = {
            1: [int(m.payload) for m in got if m.topic == "pipe/1"],
            2: [int(m.payload) for m in got if m.topic == "pipe/2"],
        }
        assert by_qos[1] == list(range(1000))
        assert by_qos[2] == list(range(1000))
        sink.expect_none()
        pub.disconnect()
        sink.disconnect()


@pytest.mark.parametrize("transport", ["tcp", "ws"])
@pytest.mark.parametrize("version", [4, 5], ids=["3.1.1", "5"])
def test_mqttjs_publishing_1000_qos1_and_1000_qos2_without_waiting(
    tmp_path: Path, node: str, transport: str, version: int
) -> None:
    """MQTT.js `client.publish` in a loop (200 QoS 2 used to be cut off at the 101st): every callback
    is called, every message delivered as its QoS promises."""
    count = 1000
    listeners = (ListenerConfig(), ListenerConfig(protocol="ws"))
    with BrokerThread(sqlite(tmp_path, *listeners)) as b:
        assert b.broker is not None
        ports = [port for _, port in b.broker.addresses]
        url = f"mqtt://127.0.0.1:{ports[0]}" if transport == "tcp" else f"ws://127.0.0.1:{ports[1]}/mqtt"
        sink = PahoClient(ports[0], version=V5, clean=False, session_expiry=60)
        sink.subscribe("js/#", qos=2)
        script = JS_DIR / "pipeline.mjs"
        opts = {
            "url": url,
            "protocolVersion": version,
            "clientId": f"js-{transport}-{version}",
            "count": count,
            "topic": "js",
            "timeoutMs": 60000,
        }
        run = subprocess.run(
            [node, str(script), json.dumps(opts)], cwd=JS_DIR, capture_output=True, text=True, timeout=90
        )
        assert run.returncode == 0, (run.stdout, run.stderr)
        done = json.loads(run.stdout.strip().splitlines()[-1])
        assert done == {"event": "done", "acked": {"1": count, "2": count}, "errors": []}
        got = sink.expect_n(2 * count, timeout=30)
        for qos in (1, 2):
            assert [int(m.payload) for m in got if m.topic == f"js/{qos}"] == list(range(count))
        sink.expect_none()
        sink.disconnect()


def test_strict_setting_disconnects_a_v5_client_over_receive_maximum_and_it_reads_why() -> None:
    """mqtt.receive_maximum_exceeded = "disconnect": [MQTT-3.3.4-9] is enforced with DISCONNECT 0x93
    (section 4.9); the client, still sending, reads it (a lingering close), not a reset."""
    with BrokerThread(memory(receive_maximum=10, receive_maximum_exceeded="disconnect")) as b:
        raw = RawClient(b.port, V5_WIRE)
        connack = raw.connect("overrunner")
        assert connack.properties.receive_maximum == 10  # type: ignore[attr-defined]
        burst = b"".join(
            encode(Publish(topic="over/x", payload=b"x", qos=1, packet_id=i + 1), V5_WIRE) for i in range(50)
        )
        stop = threading.Event()

        def keep_sending() -> None:
            # Beyond the burst, the client keeps writing for a while, as a pipelining client does.
            with_more = encode(Publish(topic="over/y", payload=b"y" * 1000), V5_WIRE)
            try:
                raw.sock.sendall(burst)
                deadline = time.monotonic() + 1.0
                while not stop.is_set() and time.monotonic() < deadline:
                    raw.sock.sendall(with_more)
            except OSError:
                pass

        sender = threading.Thread(target=keep_sending)
        sender.start()
        try:
            got = raw.expect_closed(timeout=10)
        finally:
            stop.set()
            sender.join()
        disconnects = [p for p in got if isinstance(p, Disconnect)]
        assert [d.reason_code for d in disconnects] == [ReasonCode.RECEIVE_MAXIMUM_EXCEEDED]
        raw.close()


def test_refused_client_still_sending_reads_its_connack() -> None:
    """A refused CONNECT followed at once by more bytes: the broker answers CONNACK 0x05, shuts down
    its writing side and reads the rest, so the client reads the refusal instead of a reset."""
    cfg = Config(storage=StorageConfig(backend="memory"), allow_anonymous=False)
    with BrokerThread(cfg) as b:
        for _ in range(5):
            sock = socket.create_connection(("127.0.0.1", b.port), timeout=5)
            connect = encode(Connect(protocol_version=V311_WIRE, client_id="nobody"), V311_WIRE)
            junk = encode(Publish(topic="a/b", payload=b"z" * 60_000), V311_WIRE)
            sock.sendall(connect + junk * 4)
            data = b""
            try:
                while True:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except ConnectionResetError:
                pass
            assert data == b"\x20\x02\x00\x05", data  # not authorized (3.1.1 return code 5)
            sock.close()


# --- one slow subscriber never stalls a publisher ------------------------------------------------------


def _pair(port: int, topic: str, qos: int, count: int, window: int = 50, timeout: float = 60) -> None:
    """A publisher keeping at most ``window`` messages undelivered to its own subscriber."""
    sub = PahoClient(port, version=V311)
    sub.subscribe(topic, qos=qos)
    pub = PahoClient(port, version=V311)
    received = 0
    deadline = time.monotonic() + timeout
    for i in range(count):
        while i - received >= window:
            sub.expect(timeout=max(deadline - time.monotonic(), 0.01))
            received += 1
        pub.publish(topic, b"%d" % i, qos=qos, wait=False)
    while received < count:
        assert time.monotonic() < deadline, f"{topic}: {received} of {count} within {timeout} s"
        sub.expect(timeout=max(deadline - time.monotonic(), 0.01))
        received += 1
    pub.disconnect()
    sub.disconnect()


def _rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@pytest.mark.parametrize("loop", LOOPS)
def test_a_subscriber_that_never_reads_stalls_nobody(loop: str) -> None:
    """Clients subscribed to `#` at QoS 0 and QoS 1 that never read: QoS 0 and QoS 1 pairs on other
    topics still exchange every message; the stuck ones lose their QoS 0 messages (counted) and queue
    their QoS 1 ones; memory stays bounded."""
    count = 5000
    payload_pad = 2000
    cfg = memory(max_write_buffer=64 * 1024, max_queued_messages=100_000)
    with BrokerThread(cfg, loop=loop) as b:
        rss_before = _rss_kib()
        stuck0 = stuck_subscriber(b.port, "#", 0, "stuck-0")
        stuck1 = stuck_subscriber(b.port, "#", 1, "stuck-1", clean_start=False)
        small_send_buffer(b, "stuck-0")
        small_send_buffer(b, "stuck-1")
        # Large payloads fill the stuck sockets (and the kernel's buffers under them) quickly.
        filler = PahoClient(b.port, version=V311)
        for _ in range(2000):
            filler.publish("fill/x", b"f" * payload_pad, qos=0, wait=False)
        filler.publish("fill/x", b"last", qos=1)
        wait_until(lambda: b.call(lambda: b.core.clients["stuck-0"].link.congested), "stuck-0 congested")
        pairs = [
            threading.Thread(target=_pair, args=(b.port, "pair/q0", 0, count)),
            threading.Thread(target=_pair, args=(b.port, "pair/q1", 1, count)),
        ]
        errors: list[BaseException] = []

        def guarded(t: threading.Thread) -> None:
            try:
                t.run()
            except BaseException as exc:
                errors.append(exc)

        runners = [threading.Thread(target=guarded, args=(t,)) for t in pairs]
        for r in runners:
            r.start()
        for r in runners:
            r.join(120)
        assert not errors, errors
        stats = b.call(lambda: b.core.stats)
        stuck = b.call(lambda: b.core.clients["stuck-0"])
        assert stuck.messages_dropped > 0
        assert stats.slow_subscriber_drops >= stuck.messages_dropped
        # QoS 1 for the stuck client waits in its session queue, not in its socket buffer.
        session = b.call(lambda: b.core.sessions["stuck-1"])
        assert session.queued > 0
        # Bounded by max_write_buffer plus what one read (uvloop reads 256 KiB) can add before the
        # socket says it is full.
        held = b.call(lambda: b.core.clients["stuck-1"].link._held)
        assert held <= 64 * 1024 + 512 * 1024
        rss_after = _rss_kib()
        print(f"RSS max before {rss_before} KiB, after {rss_after} KiB")
        assert rss_after - rss_before < 200_000  # generous: the test process holds clients too
        filler.disconnect()
        stuck0.close()
        stuck1.close()


def test_write_timeout_disconnects_a_stuck_subscriber_publishes_its_will_and_keeps_its_session() -> None:
    """mqtt.write_timeout: a socket that took nothing for that long loses its client, as aedes'
    drainTimeout; not a clean DISCONNECT, so its will is published [MQTT-3.1.2-8], and its persistent
    session stays for its return."""
    with BrokerThread(memory(max_write_buffer=32 * 1024, write_timeout=1.0)) as b:
        watcher = PahoClient(b.port, version=V311)
        watcher.subscribe("wills/#", qos=1)
        stuck = stuck_subscriber(
            b.port,
            "flood/#",
            1,
            "sleepy",
            clean_start=False,
            will=Will(topic="wills/sleepy", payload=b"gone", qos=1),
        )
        small_send_buffer(b, "sleepy")
        pub = PahoClient(b.port, version=V311)
        # QoS 0 fills its socket; the QoS 1 messages wait in flight or, once it is congested, queued.
        for _ in range(2000):
            pub.publish("flood/zero", b"." * 2000, qos=0, wait=False)
        for i in range(300):
            pub.publish("flood/one", b"%d" % i, qos=1, wait=False)
        will = watcher.expect(timeout=15)
        assert (will.topic, will.payload) == ("wills/sleepy", b"gone")
        b.wait_offline("sleepy")
        session = b.call(lambda: b.core.sessions["sleepy"])
        assert session.queued + len(session.inflight) == 300
        stuck.close()
        # It comes back: the session kept its subscription and every QoS 1 message.
        back = PahoClient(b.port, "sleepy", version=V311, clean=False)
        assert back.session_present
        ones = [m for m in back.expect_n(300, timeout=20) if m.topic == "flood/one"]
        assert sorted(int(m.payload) for m in ones) == list(range(300))
        back.disconnect()
        pub.disconnect()
        watcher.disconnect()


def test_broker_wide_write_buffer_limit_pauses_publishers_until_the_buffers_drain() -> None:
    """mqtt.max_write_buffer_total: the only backpressure on publishers.  Several stuck subscribers
    together exceed it, the publisher is paused (not dropped); once they go, it is read again."""
    cfg = memory(max_write_buffer=256 * 1024, max_write_buffer_total=512 * 1024)
    with BrokerThread(cfg) as b:
        stuck = [stuck_subscriber(b.port, "wide/#", 0, f"wide-{i}") for i in range(6)]
        for i in range(6):
            small_send_buffer(b, f"wide-{i}")
        sink = PahoClient(b.port, version=V311)
        sink.subscribe("wide/#", qos=0)
        pub = PahoClient(b.port, version=V311)
        for i in range(2000):
            pub.publish("wide/x", b"%d." % i + b"w" * 1000, qos=0, wait=False)
        flusher = b.call(lambda: b.broker._flusher)  # type: ignore[union-attr]
        wait_until(lambda: b.call(lambda: flusher.publisher_pauses) > 0, "a publisher pause")
        for sock in stuck:
            reset(sock)
        got = sink.expect_n(2000, timeout=30)
        assert [int(m.payload.split(b".")[0]) for m in got] == list(range(2000))
        wait_until(lambda: b.call(lambda: flusher.buffered) == 0, "the buffers to be released")
        pub.disconnect()
        sink.disconnect()
