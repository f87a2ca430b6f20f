"""Limits against abuse, each hit by a real client while a well-behaved one keeps exchanging messages.

Every test here has a :class:`Witness`: a subscriber and a publisher that are
within every limit.  It round-trips a message before, during and after the
abuse, so "everyone else is unaffected" is checked, not assumed.

Reason codes are from the OASIS MQTT 5.0 standard: Table 3-1 (Connect Reason
Codes, section 3.2.2.2), Table 3-8 (Subscribe Reason Codes, 3.9.3) and the
Disconnect Reason Codes of section 3.14.2.1; 3.1.1 return codes from sections
3.2.2.3 and 3.9.3 of MQTT 3.1.1.
"""

from __future__ import annotations

import contextlib
import resource
import selectors
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from zanzara.config import Config, ListenerConfig, MqttConfig, StorageConfig
from zanzara.mqtt.codec import encode
from zanzara.mqtt.enums import ProtocolVersion, ReasonCode
from zanzara.mqtt.packets import ConnAck, Connect, Disconnect, Publish, Will
from zanzara.throttle import TokenBucket
from zanzara.transports.admission import PENDING_REFUSALS, Admission, ConnectionLimits

from brokerthread import BrokerThread
from certs import paho_client
from clients import V5, V311, PahoClient, RawClient
from command import ZANZARA, free_port, read_until_ready
from peers import require

V5_WIRE = ProtocolVersion.MQTT5
VERSIONS = [V311, V5]
VERSION_IDS = ["3.1.1", "5"]
TIMEOUT = 10.0


def memory(*listeners: ListenerConfig, **mqtt: Any) -> Config:
    return Config(
        storage=StorageConfig(backend="memory"),
        listeners=listeners or (ListenerConfig(port=0),),
        mqtt=MqttConfig(**mqtt),
    )


class Witness:
    """A well-behaved pair: every :meth:`round_trip` publishes one message and must receive it."""

    def __init__(self, sub_port: int, pub_port: int | None = None, version: int = V5) -> None:
        self.sub = PahoClient(sub_port, version=version)
        self.pub = PahoClient(pub_port or sub_port, version=version)
        assert self.sub.subscribe("witness/#", qos=1) == [1]
        self.count = 0

    def round_trip(self) -> None:
        self.count += 1
        payload = f"w{self.count}".encode()
        self.pub.publish(f"witness/{self.count}", payload, qos=1)
        msg = self.sub.expect(TIMEOUT)
        assert (msg.topic, msg.payload) == (f"witness/{self.count}", payload)

    def close(self) -> None:
        self.sub.disconnect()
        self.pub.disconnect()


def wait_until(condition: Any, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


# paho 2 reports a 3.1.1 CONNACK return code as the MQTT 5 reason code of the same meaning.
PAHO_V311 = {1: 0x84, 2: 0x85, 3: 0x88, 4: 0x86, 5: 0x87}


def refused(port: int, version: int, **kw: Any) -> int:
    """Connect a paho client that the broker refuses; its CONNACK code (as paho reports it)."""
    c = PahoClient(port, version=version, **kw)
    try:
        return c.reason_code
    finally:
        c.client.loop_stop()  # no automatic reconnect
        c.client.disconnect()


def dropped(c: PahoClient) -> Any:
    """The broker closed ``c`` (v5: with a DISCONNECT); the reason paho reports."""
    rc, _ = c.expect_disconnect()
    c.client.loop_stop()
    return rc


# --- the building blocks, with time passed in -----------------------------------------------------


def test_token_bucket_lets_a_second_through_then_asks_to_wait() -> None:
    bucket = TokenBucket(100, now=0.0)
    assert all(bucket.take(1, 0.0) == 0 for _ in range(100))  # one second's worth at once
    assert bucket.take(10, 0.0) == pytest.approx(0.1)  # 10 over: 0.1 s at 100/s
    assert bucket.take(5, 0.1) == pytest.approx(0.05)  # the debt is paid, 5 more owed
    assert bucket.take(1, 10.0) == 0  # refilled, never beyond one second's worth
    assert bucket.take(99, 10.0) == 0
    assert bucket.take(1, 10.0) == pytest.approx(0.01)


def test_connection_limits_count_per_listener_and_in_all() -> None:
    limits = ConnectionLimits(max_connections=3)
    assert [limits.admit(0, 2) for _ in range(3)] == [Admission.SERVE, Admission.SERVE, Admission.REFUSE]
    assert limits.admit(1) is Admission.SERVE
    assert limits.admit(1) is Admission.REFUSE  # three open in all
    limits.release(0, Admission.SERVE)
    assert limits.admit(1) is Admission.SERVE
    assert limits.open == 3
    for _ in range(PENDING_REFUSALS - 2):
        assert limits.admit(1) is Admission.REFUSE
    assert limits.admit(1) is Admission.DROP
    limits.release(1, Admission.REFUSE)
    assert limits.admit(1) is Admission.REFUSE


# --- connections -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_listener_max_connections(version: int) -> None:
    """Over a listener's max_connections: v5 CONNACK 0x97 "Quota exceeded ... an implementation or
    administrative imposed limit has been exceeded" (Table 3-1); 3.1.1 CONNACK 0x03 "Server unavailable"."""
    with BrokerThread(memory(ListenerConfig(port=0, max_connections=2), ListenerConfig(port=0))) as b:
        full, other = b.broker.addresses[0][1], b.broker.addresses[1][1]  # type: ignore[union-attr]
        witness = Witness(full, version=version)  # both slots of the first listener
        assert refused(full, version) == (0x97 if version == V5 else PAHO_V311[3])
        witness.round_trip()
        # Only that listener is full.
        extra = PahoClient(other, version=version)
        assert extra.reason_code == 0
        extra.disconnect()
        # A slot comes back when a client leaves.
        witness.pub.disconnect()
        wait_until(lambda: b.call(lambda: b.broker._limits.open) == 1, "the slot to be released")
        witness.pub = PahoClient(full, version=version)
        witness.round_trip()
        witness.close()


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_global_max_connections_counts_sockets_from_accept(version: int) -> None:
    """mqtt.max_connections spans listeners and counts a socket from accept, before its CONNECT
    (as Mosquitto): an idle socket holds a slot.  Over it: CONNACK 0x97 (Table 3-1), 3.1.1 0x03."""
    with BrokerThread(memory(ListenerConfig(port=0), ListenerConfig(port=0), max_connections=3)) as b:
        one, two = b.broker.addresses[0][1], b.broker.addresses[1][1]  # type: ignore[union-attr]
        witness = Witness(one, two, version=version)
        idle = socket.create_connection(("127.0.0.1", two))
        wait_until(lambda: b.call(lambda: b.broker._limits.open) == 3, "the idle socket to be counted")
        for port in (one, two):
            assert refused(port, version) == (0x97 if version == V5 else PAHO_V311[3])
        raw = RawClient(one, ProtocolVersion(version))
        assert raw.connect().reason_code == (0x97 if version == V5 else 3)  # the byte on the wire
        assert raw.expect_closed() == []
        raw.close()
        witness.round_trip()
        idle.close()
        wait_until(lambda: b.call(lambda: b.broker._limits.open) == 2, "the idle socket's slot")
        late = PahoClient(one, version=version)
        assert late.reason_code == 0
        witness.round_trip()
        late.disconnect()
        witness.close()


def test_refusals_beyond_the_pending_bound_are_closed_at_once() -> None:
    """Over max_connections, at most PENDING_REFUSALS sockets wait for a CONNECT to refuse; one more
    is closed right after accept without a word (what Mosquitto does to all of them)."""
    with BrokerThread(memory(max_connections=2, connect_timeout=60)) as b:
        witness = Witness(b.port)
        waiting = [RawClient(b.port) for _ in range(PENDING_REFUSALS)]
        extra = RawClient(b.port)
        assert extra.expect_closed() == []  # closed long before connect_timeout, nothing sent
        witness.round_trip()
        # The waiting ones are still heard out, and told why (Table 3-1: 0x97 Quota exceeded).
        ack = waiting[0].connect("late")
        assert isinstance(ack, ConnAck) and ack.reason_code == ReasonCode.QUOTA_EXCEEDED
        assert waiting[0].expect_closed() == []  # [MQTT-3.2.2-7] closed after a refusing CONNACK
        for raw in [*waiting, extra]:
            raw.close()
        witness.close()


# --- client ids, topics, packets --------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_client_id_longer_than_max_client_id_length(version: int) -> None:
    """v5 CONNACK 0x85 "Client Identifier not valid" (Table 3-1); 3.1.1 CONNACK 0x02 "Identifier
    rejected" [MQTT-3.1.3-9]."""
    with BrokerThread(memory(max_client_id_length=23)) as b:
        witness = Witness(b.port, version=version)
        assert refused(b.port, version, client_id="x" * 24) == (0x85 if version == V5 else PAHO_V311[2])
        witness.round_trip()
        fits = PahoClient(b.port, version=version, client_id="y" * 23)  # [MQTT-3.1.3-5] 23 always fit
        assert fits.reason_code == 0
        fits.disconnect()
        witness.close()


# max_topic_length counts UTF-8 bytes: "é" is two.
LONG = {"max_topic_length": 32}
LONG_TOPIC, FITTING_TOPIC = "é" * 16 + "a", "é" * 16
DEEP = {"max_topic_levels": 4}
DEEP_TOPIC, FITTING_DEEP = "a/b/c/d/e", "a/b/c/d"
TOPIC_CASES = [(LONG, LONG_TOPIC, FITTING_TOPIC), (DEEP, DEEP_TOPIC, FITTING_DEEP)]


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
@pytest.mark.parametrize(("limit", "topic", "fitting"), TOPIC_CASES, ids=["length", "levels"])
def test_publish_topic_over_the_limits(version: int, limit: dict[str, int], topic: str, fitting: str) -> None:
    """A PUBLISH topic beyond max_topic_length/max_topic_levels: v5 DISCONNECT 0x90 "Topic Name
    invalid: the Topic Name is correctly formed, but is not accepted by this Client or Server"
    (section 3.14.2.1); 3.1.1 has no DISCONNECT from the server: the connection is closed."""
    with BrokerThread(memory(**limit)) as b:
        witness = Witness(b.port, version=version)
        ok = PahoClient(b.port, version=version)
        assert ok.subscribe(fitting, qos=1) == [1]
        ok.publish(fitting, b"at the limit", qos=1)
        assert ok.expect().payload == b"at the limit"
        bad = PahoClient(b.port, version=version)
        bad.publish(topic, b"x", qos=0)
        rc = dropped(bad)
        if version == V5:
            assert rc.value == ReasonCode.TOPIC_NAME_INVALID
        witness.round_trip()
        ok.disconnect()
        witness.close()


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
@pytest.mark.parametrize(("limit", "topic", "fitting"), TOPIC_CASES, ids=["length", "levels"])
def test_subscribe_filter_over_the_limits(
    version: int, limit: dict[str, int], topic: str, fitting: str
) -> None:
    """A filter beyond the limits: v5 SUBACK 0x8F "Topic Filter invalid: the Topic Filter is correctly
    formed but is not allowed for this Client" (Table 3-8); 3.1.1 0x80 Failure.  Its neighbours in the
    same SUBSCRIBE are granted [MQTT-3.9.3-1] (one reason code per filter, in order)."""
    with BrokerThread(memory(**limit)) as b:
        witness = Witness(b.port, version=version)
        c = PahoClient(b.port, version=version)
        assert c.subscribe([(topic, 1), (fitting, 1)]) == [0x8F if version == V5 else 0x80, 1]
        witness.round_trip()
        c.disconnect()
        witness.close()


def test_will_topic_over_max_topic_length() -> None:
    """v5 CONNACK 0x90 "The Will Topic Name is not malformed, but is not accepted by this Server"
    (Table 3-1); 3.1.1 has no such return code: the connection is closed without one [MQTT-3.2.2-5]."""
    with BrokerThread(memory(**LONG)) as b:
        witness = Witness(b.port)
        assert refused(b.port, V5, will=(LONG_TOPIC, b"bye", 0, False)) == ReasonCode.TOPIC_NAME_INVALID
        raw = RawClient(b.port, ProtocolVersion.MQTT311)
        will = Will(topic=LONG_TOPIC, payload=b"bye")
        raw.send(Connect(protocol_version=ProtocolVersion.MQTT311, client_id="w", will=will))
        assert raw.expect_closed() == []
        raw.close()
        witness.round_trip()
        witness.close()


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_packet_over_max_packet_size(version: int) -> None:
    """[MQTT-3.2.2-15] "If a Server receives a packet whose size exceeds this limit, this is a Protocol
    Error, the Server uses DISCONNECT with Reason Code 0x95 (Packet too large)"; 3.1.1: closed."""
    with BrokerThread(memory(max_packet_size=1024)) as b:
        witness = Witness(b.port, version=version)
        big = PahoClient(b.port, version=version)
        big.publish("big", b"x" * 2000, qos=0)
        rc = dropped(big)
        if version == V5:
            assert rc.value == ReasonCode.PACKET_TOO_LARGE
        witness.round_trip()
        witness.close()


def test_websocket_message_over_the_size_limit() -> None:
    """A WebSocket message beyond the listener's limit is closed with 1009 "a message that is too big
    for it to process" (RFC 6455 section 7.4.1); the TCP witness is unaffected."""
    listeners = (ListenerConfig(port=0), ListenerConfig(port=0, protocol="ws"))
    with BrokerThread(memory(*listeners, max_packet_size=1024)) as b:
        witness = Witness(b.port)
        ws_port = b.broker.addresses[1][1]  # type: ignore[union-attr]
        with ws_connect(f"ws://127.0.0.1:{ws_port}/mqtt", subprotocols=["mqtt"]) as ws:  # type: ignore[list-item]
            # More than max(max_packet_size, 64 KiB) in one frame.  Were it read, its first byte
            # (reserved packet type 0) would close the connection as malformed, with 1000.
            ws.send(b"\x00" * 200_000)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(TIMEOUT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        witness.round_trip()
        witness.close()


# --- subscriptions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_max_subscriptions_per_client(version: int) -> None:
    """Each filter beyond max_subscriptions: v5 SUBACK 0x97 "Quota exceeded: an implementation or
    administrative imposed limit has been exceeded" (Table 3-8); 3.1.1 0x80 Failure.  Replacing a
    subscription the client holds [MQTT-3.8.4-3] takes no new slot; the cap is per client."""
    refusal = 0x97 if version == V5 else 0x80
    with BrokerThread(memory(max_subscriptions=3)) as b:
        witness = Witness(b.port, version=version)  # holds one subscription of its own
        c = PahoClient(b.port, version=version)
        assert c.subscribe([("s/a", 1), ("s/b", 1)]) == [1, 1]
        assert c.subscribe([("s/c", 1), ("s/d", 1), ("s/a", 0)]) == [1, refusal, 0]
        witness.round_trip()
        for topic in ("s/d", "s/c"):
            witness.pub.publish(topic, topic.encode(), qos=1)
        assert c.expect().topic == "s/c"  # s/d was refused: nothing came for it
        c.expect_none()
        c.unsubscribe("s/b")
        assert c.subscribe("s/d", qos=1) == [1]
        c.disconnect()
        witness.close()


# --- read rates: a flooder is slowed, not dropped -----------------------------------------------------


FLOODS = [
    # (limit, messages, payload size): several seconds' worth beyond the first second's burst.
    pytest.param({"max_publish_rate": 100.0}, 250, 8, "mqtt", id="messages-tcp"),
    pytest.param({"max_publish_rate": 100.0}, 250, 8, "ws", id="messages-ws"),
    pytest.param({"max_bytes_rate": 10_000}, 30, 1000, "mqtt", id="bytes-tcp"),
]


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
@pytest.mark.parametrize(("limit", "count", "size", "transport"), FLOODS)
def test_flooding_publisher_is_delayed_not_dropped(
    version: int, limit: dict[str, Any], count: int, size: int, transport: str
) -> None:
    """A client publishing QoS 0 as fast as it can, over max_publish_rate or max_bytes_rate: its reads
    are paused (MQTT 5.0 section 3.1.4 suggests limiting reading against denial of service), every
    message is delivered in order, none dropped, the flooder is not disconnected, and a witness's
    message published after the whole flood was written overtakes the part still held back."""
    listeners = (ListenerConfig(port=0), ListenerConfig(port=0, protocol="ws"))
    with BrokerThread(memory(*listeners, **limit)) as b:
        ws_port = b.broker.addresses[1][1]  # type: ignore[union-attr]
        witness = Witness(b.port, version=version)
        sink = PahoClient(b.port, version=version)
        assert sink.subscribe([("flood/#", 0), ("witness/#", 0)]) == [0, 0]
        if transport == "ws":
            flooder = paho_client(ws_port, ws_path="/mqtt", version=version)
        else:
            flooder = PahoClient(b.port, version=version)
        sent = [
            flooder.publish("flood/x", str(i).encode().ljust(size, b"."), qos=0, wait=False)
            for i in range(count)
        ]
        sent[-1].wait_for_publish(TIMEOUT)  # the whole flood is in the broker's socket now

        def held_back() -> bool:
            return bool(b.core.clients[flooder.client_id].link._reading_paused)

        wait_until(lambda: b.call(held_back), "the broker to stop reading from the flooder")
        assert b.call(lambda: b.core.stats.messages_received) < count  # the rest waits unread
        witness.round_trip()
        messages = sink.expect_n(count + 1, timeout=30)
        topics = [m.topic for m in messages]
        assert topics.index("witness/1") < count  # not behind the whole flood: it was held back
        flood = [int(m.payload.rstrip(b".")) for m in messages if m.topic == "flood/x"]
        assert flood == list(range(count))  # nothing dropped, in order ...
        witness.round_trip()
        assert flooder.disconnects.empty()  # ... and nobody disconnected
        flooder.disconnect()
        sink.disconnect()
        witness.close()


def test_keep_alive_does_not_count_the_time_a_flooder_is_held_back() -> None:
    """[MQTT-3.1.2-22] closes a client from which no packet came for 1.5x its keep alive; packets
    the broker holds back (max_publish_rate) did come, so they are delivered, and the keep alive is
    enforced again once they are: the silent client then gets DISCONNECT 0x8D "Keep Alive timeout"."""
    with BrokerThread(memory(max_publish_rate=2.0)) as b:
        witness = Witness(b.port)
        sink = PahoClient(b.port)
        assert sink.subscribe("held/#", qos=0) == [0]
        raw = RawClient(b.port)
        assert raw.connect("held", keep_alive=1).reason_code == 0
        count = 8  # four seconds' worth at 2/s, beyond 1.5 s of keep alive
        flood = (encode(Publish(topic="held/x", payload=str(i).encode()), V5_WIRE) for i in range(count))
        raw.send(b"".join(flood))
        witness.round_trip()
        assert [int(m.payload) for m in sink.expect_n(count, timeout=TIMEOUT)] == list(range(count))
        assert raw.expect_closed() == [Disconnect(reason_code=ReasonCode.KEEP_ALIVE_TIMEOUT)]
        raw.close()
        witness.round_trip()
        sink.disconnect()
        witness.close()


# --- sockets that never send CONNECT ------------------------------------------------------------------


IDLE_SOCKETS = 10_000


@contextlib.contextmanager
def zanzara_process(tmp_path: Any, **mqtt: object) -> Iterator[int]:
    """The zanzara command (uvloop) in its own process, so its descriptors are not ours."""
    port = free_port()
    settings = "\n".join(f"{key} = {value!r}" for key, value in mqtt.items())
    cfg = tmp_path / "zanzara.toml"
    cfg.write_text(
        f"allow_anonymous = true\n\n[[listeners]]\nport = {port}\n\n"
        f'[storage]\nbackend = "memory"\n\n[mqtt]\n{settings}\n',
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [str(ZANZARA), "-c", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        ready, log = read_until_ready(proc)
        assert ready and f":{port}" in log, log
        assert proc.stderr is not None
        # The rest of the log is read and dropped, so that a full pipe never blocks the broker.
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        finally:
            proc.kill()


def test_ten_thousand_idle_sockets_are_closed_and_others_are_served(tmp_path: Any) -> None:
    """10,000 sockets that never send CONNECT: each is closed after connect_timeout ("If the Server does
    not receive a CONNECT packet within a reasonable amount of time after the Network Connection is
    established, the Server SHOULD close the Network Connection", MQTT 5.0 section 3.1.4, 3.1.1 section
    3.1.4), while a witness connects and exchanges messages meanwhile."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = IDLE_SOCKETS + 1000
    assert hard == resource.RLIM_INFINITY or hard >= needed, f"RLIMIT_NOFILE hard limit {hard} < {needed}"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    sockets: list[socket.socket] = []
    try:
        with zanzara_process(tmp_path, connect_timeout=3.0) as port:
            before = Witness(port)
            for _ in range(IDLE_SOCKETS):
                sockets.append(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT))
            # With every socket opened (most still waiting out connect_timeout), newcomers are
            # served all the same.  They are mosquitto clients, each its own process: paho's
            # loop uses select(), which cannot watch a descriptor numbered above 1023.
            before.round_trip()
            newcomer_round_trip(port, "first")
            # Every idle socket is closed by the broker; none of them got a byte.
            with selectors.DefaultSelector() as sel:
                for s in sockets:
                    s.setblocking(False)
                    sel.register(s, selectors.EVENT_READ)
                open_count = len(sockets)
                deadline = time.monotonic() + 20
                while open_count:
                    assert time.monotonic() < deadline, f"{open_count} idle sockets still open"
                    for key, _ in sel.select(1.0):
                        sock = key.fileobj
                        assert isinstance(sock, socket.socket)
                        assert _closed_by_peer(sock)
                        sel.unregister(sock)
                        open_count -= 1
            before.round_trip()
            newcomer_round_trip(port, "second")
            before.close()
    finally:
        for s in sockets:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def newcomer_round_trip(port: int, text: str) -> None:
    """mosquitto_pub leaves a retained message, a new mosquitto_sub (MQTT 3.1.1) receives it."""
    topic = f"newcomer/{text}"
    subprocess.run(
        [require("mosquitto_pub"), "-p", str(port), "-t", topic, "-m", text, "-r", "-q", "1"],
        check=True,
        timeout=TIMEOUT,
    )
    got = subprocess.run(
        [require("mosquitto_sub"), "-p", str(port), "-t", topic, "-C", "1", "-W", "10", "-V", "mqttv311"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT + 5,
    )
    assert got.stdout.split() == [text], got.stderr


def _closed_by_peer(sock: socket.socket) -> bool:
    """True if the peer closed ``sock`` without sending anything; False if it is still open."""
    blocking = sock.getblocking()
    sock.setblocking(False)
    try:
        data = sock.recv(1)
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.setblocking(blocking)
    assert data == b"", f"the broker sent {data!r} to a socket that never sent CONNECT"
    return True
