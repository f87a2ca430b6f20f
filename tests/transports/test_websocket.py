"""MQTT over WebSocket (MQTT 5.0 section 6) with real peers: MQTT.js from Node, paho-mqtt, raw frames.

MQTT.js runs from tests/js (``npm install`` on first use: a missing Node.js or a
failing install fails the tests, it never skips them).  The raw tests use the
``websockets`` client to put MQTT packets across frame boundaries.
"""

from __future__ import annotations

import http.client
import json
import queue
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from zanzara import ReasonCode
from zanzara.config import ListenerConfig
from zanzara.hooks import ConnectRequest
from zanzara.mqtt.codec import Reader, encode
from zanzara.mqtt.enums import ProtocolVersion
from zanzara.mqtt.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    Publish,
    SubAck,
)

from certs import CLIENT_CN, Pki, make_pki, paho_client
from clients import V5, V311, PahoClient
from command import free_port, start
from peers import JS_DIR
from wsclient import TIMEOUT, V5_WIRE, RawWs, config, connect_packet, port, subscribe_packet

# --- fixtures and helpers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


class JsPeer:
    """tests/js/peer.mjs running MQTT.js; its JSON lines arrive in ``events``."""

    def __init__(self, node: str, **options: Any) -> None:
        self.proc = subprocess.Popen(
            [node, str(JS_DIR / "peer.mjs"), json.dumps(options)],
            cwd=JS_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.put(json.loads(line))
        self.events.put(None)

    def next(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        try:
            event = self.events.get(timeout=timeout)
        except queue.Empty:
            self.proc.kill()
            raise AssertionError(f"MQTT.js said nothing: {self._stderr()}") from None
        if event is None:
            raise AssertionError(f"MQTT.js exited ({self.proc.wait()}): {self._stderr()}")
        return event

    def finish(self) -> None:
        assert self.next() == {"event": "done"}
        assert self.proc.wait(TIMEOUT) == 0, self._stderr()

    def _stderr(self) -> str:
        self.proc.wait(TIMEOUT)
        return self.proc.stderr.read() if self.proc.stderr else ""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


WS = ListenerConfig(protocol="ws", port=0)


def wss(pki: Pki, **options: Any) -> ListenerConfig:
    return ListenerConfig(
        protocol="ws", port=0, certfile=str(pki.server.cert), keyfile=str(pki.server.key), **options
    )


# --- MQTT.js (Node) ---------------------------------------------------------------------------------


def exchange_with_mqttjs(node: str, url: str, tcp_port: int, version: int, **tls: Any) -> None:
    """MQTT.js on ``url`` and paho on TCP send each other messages, QoS 0 and 1."""
    tag = uuid.uuid4().hex[:6]
    peer = JsPeer(
        node,
        url=url,
        protocolVersion=version,
        subscribe=f"js/{tag}/in/#",
        expect=2,
        publish=[
            {"topic": f"js/{tag}/out/1", "payload": "from mqtt.js, qos 1", "qos": 1},
            {"topic": f"js/{tag}/out/0", "payload": "from mqtt.js, qos 0", "qos": 0},
        ],
        **tls,
    )
    paho = PahoClient(tcp_port, version=V5 if version == 5 else V311)
    try:
        assert paho.subscribe(f"js/{tag}/out/#", qos=1) == [1]
        assert peer.next() == {"event": "ready"}
        paho.publish(f"js/{tag}/in/a", b"from paho, qos 1", qos=1)
        paho.publish(f"js/{tag}/in/b", "from paho, qos 0 \u2713".encode(), qos=0)
        got = [peer.next(), peer.next()]
        assert got == [
            {"event": "message", "topic": f"js/{tag}/in/a", "payload": "from paho, qos 1", "qos": 1},
            {"event": "message", "topic": f"js/{tag}/in/b", "payload": "from paho, qos 0 \u2713", "qos": 0},
        ]
        peer.finish()
        back = sorted((m.topic, m.payload, m.qos) for m in paho.expect_n(2))
        assert back == [
            (f"js/{tag}/out/0", b"from mqtt.js, qos 0", 0),
            (f"js/{tag}/out/1", b"from mqtt.js, qos 1", 1),
        ]
    finally:
        peer.close()
        paho.disconnect()


@pytest.mark.parametrize("version", [4, 5], ids=["3.1.1", "5"])
def test_mqttjs_over_ws_exchanges_with_paho_over_tcp(make_broker, node: str, version: int) -> None:
    b = make_broker(config(WS))
    exchange_with_mqttjs(node, f"ws://127.0.0.1:{port(b, 1)}/mqtt", port(b, 0), version)


@pytest.mark.parametrize("version", [4, 5], ids=["3.1.1", "5"])
def test_mqttjs_over_wss_exchanges_with_paho_over_tcp(make_broker, node: str, pki: Pki, version: int) -> None:
    b = make_broker(config(wss(pki)))
    # rejectUnauthorized with the test CA: MQTT.js checks the broker's certificate.
    exchange_with_mqttjs(node, f"wss://127.0.0.1:{port(b, 1)}/mqtt", port(b, 0), version, ca=str(pki.ca))


class Recorder:
    def __init__(self) -> None:
        self.usernames: dict[str, str | None] = {}

    async def authenticate(self, request: ConnectRequest) -> ReasonCode:
        self.usernames[request.client.client_id] = request.client.username
        return ReasonCode.SUCCESS


def test_mqttjs_with_client_certificate_over_wss(make_broker, node: str, pki: Pki) -> None:
    hook = Recorder()
    listener = wss(pki, cafile=str(pki.ca), require_certificate=True, use_identity_as_username=True)
    b = make_broker(config(listener), setup=lambda broker: broker.add_authenticator(hook))
    url = f"wss://127.0.0.1:{port(b, 1)}/mqtt"
    exchange_with_mqttjs(
        node,
        url,
        port(b, 0),
        5,
        ca=str(pki.ca),
        cert=str(pki.client.cert),
        key=str(pki.client.key),
        clientId="js-dev",
    )
    assert hook.usernames["js-dev"] == CLIENT_CN
    # Without a certificate the TLS handshake fails: MQTT.js reports an error and exits 1.
    refused = JsPeer(node, url=url, ca=str(pki.ca), timeoutMs=8000)
    try:
        assert refused.proc.wait(TIMEOUT) == 1
    finally:
        refused.close()


# --- paho-mqtt over WebSocket -------------------------------------------------------------------------


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_paho_over_websocket(make_broker, pki: Pki, secure: bool) -> None:
    b = make_broker(config(wss(pki) if secure else WS))
    ws = paho_client(port(b, 1), ws_path="/mqtt", ca=pki.ca if secure else None)
    tcp = PahoClient(port(b, 0))
    assert ws.subscribe("pws/#", qos=2) == [2]
    tcp.publish("pws/1", b"x" * 200_000, qos=2)  # more than the write limit: several writes, one frame
    assert ws.expect().payload == b"x" * 200_000
    ws.disconnect()
    tcp.disconnect()


# --- the handshake ----------------------------------------------------------------------------------


@pytest.mark.parametrize("offered", [[], ["chat"], ["MQTT"]], ids=["none", "other", "wrong-case"])
def test_client_without_mqtt_subprotocol_is_refused(make_broker, offered: list[str]) -> None:
    b = make_broker(config(WS))
    with pytest.raises(InvalidStatus) as caught:
        RawWs(f"ws://127.0.0.1:{port(b, 1)}/mqtt", subprotocols=offered)
    assert caught.value.response.status_code == 400
    # The listener keeps serving.
    c = RawWs(f"ws://127.0.0.1:{port(b, 1)}/mqtt")
    c.send(connect_packet())
    assert isinstance(c.recv(), ConnAck)
    assert c.ws.subprotocol == "mqtt"
    c.close()


def test_mqttv31_subprotocol_and_mqtt_3_1(make_broker) -> None:
    b = make_broker(config(WS))
    c = RawWs(f"ws://127.0.0.1:{port(b, 1)}/mqtt", subprotocols=["mqttv3.1"])
    assert c.ws.subprotocol == "mqttv3.1"
    v31 = ProtocolVersion.MQTT31
    c.reader = Reader(role="client", version=v31)
    c.send(encode(Connect(protocol_version=v31, protocol_name="MQIsdp", client_id="old-timer"), v31))
    connack = c.recv()
    assert isinstance(connack, ConnAck)
    assert connack.reason_code == 0
    c.close()


@pytest.mark.parametrize("path", ["/", "/mqtt", "/mqtt/x", "/devices/42?token=1"])
def test_any_path_opens_mqtt_by_default(make_broker, path: str) -> None:
    """MQTT 5.0 section 6 names no path; as Mosquitto, a listener without ``path`` takes the MQTT
    handshake on any (``mqtt.connect('ws://host:port')`` asks for ``/``)."""
    b = make_broker(config(WS))
    c = RawWs(f"ws://127.0.0.1:{port(b, 1)}{path}")
    c.send(connect_packet())
    assert isinstance(c.recv(), ConnAck)
    c.close()


def test_configured_path_restricts(make_broker) -> None:
    """With ``path`` set, the handshake is taken there only (query string aside); elsewhere HTTP 404.
    ``path = "/mqtt"``, the old default, keeps working as such a restriction."""
    b = make_broker(
        config(
            ListenerConfig(protocol="ws", port=0, path="/devices/mqtt"),
            ListenerConfig(protocol="ws", port=0, path="/mqtt"),
        )
    )
    for index, wrong in ((1, "/"), (1, "/mqtt"), (1, "/devices/mqtt/x"), (2, "/"), (2, "/mqtt/x")):
        with pytest.raises(InvalidStatus) as caught:
            RawWs(f"ws://127.0.0.1:{port(b, index)}{wrong}")
        assert caught.value.response.status_code == 404
    for index, right in ((1, "/devices/mqtt?token=1"), (2, "/mqtt")):
        c = RawWs(f"ws://127.0.0.1:{port(b, index)}{right}")
        c.send(connect_packet())
        assert isinstance(c.recv(), ConnAck)
        c.close()


def test_plain_http_without_upgrade_gets_426(make_broker) -> None:
    """Without a static folder, a plain HTTP request on any path is told to upgrade (RFC 6455 4.2.2)."""
    b = make_broker(config(WS))
    conn = http.client.HTTPConnection("127.0.0.1", port(b, 1), timeout=TIMEOUT)
    try:
        conn.request("GET", "/")
        assert conn.getresponse().status == 426
    finally:
        conn.close()


@pytest.mark.parametrize("version", [4, 5], ids=["3.1.1", "5"])
def test_mqttjs_without_a_path(make_broker, node: str, version: int) -> None:
    """``mqtt.connect('ws://host:port')``, the everyday way, requests ``/``: it connects (it used to
    get 404, which MQTT.js swallows and retries forever)."""
    b = make_broker(config(WS))
    exchange_with_mqttjs(node, f"ws://127.0.0.1:{port(b, 1)}", port(b, 0), version)


def test_paho_on_the_root_path(make_broker) -> None:
    b = make_broker(config(WS))
    ws = paho_client(port(b, 1), ws_path="/")
    assert ws.subscribe("root/#", qos=1) == [1]
    ws.publish("root/1", b"over /", qos=1)
    assert ws.expect().payload == b"over /"
    ws.disconnect()


# --- frames -----------------------------------------------------------------------------------------


def test_packets_split_across_frames_and_packets_sharing_a_frame(make_broker) -> None:
    b = make_broker(config(WS))
    c = RawWs(f"ws://127.0.0.1:{port(b, 1)}/mqtt")
    connect = connect_packet("frames")
    # [MQTT-6.0.0-2] one packet over three messages, the first holding only the fixed header's first byte.
    for piece in (connect[:1], connect[1:4], connect[4:]):
        c.send(piece)
    assert isinstance(c.recv(), ConnAck)
    # One packet as a fragmented message: a binary frame and two continuation frames.
    c.send([(sub := subscribe_packet("frames/#", qos=1))[:2], sub[2:5], sub[5:]])
    assert c.recv() == SubAck(packet_id=1, reason_codes=(1,))
    # [MQTT-6.0.0-2] two packets in one frame, and a third starting in it.
    publishes = [
        encode(Publish(topic=f"frames/{i}", payload=b"p%d" % i, qos=1, packet_id=10 + i), V5_WIRE)
        for i in range(3)
    ]
    c.send(publishes[0] + publishes[1] + publishes[2][:3])
    c.send(publishes[2][3:])
    got = [c.recv() for _ in range(6)]
    delivered = sorted((p.topic, p.payload) for p in got if isinstance(p, Publish))
    assert delivered == [("frames/0", b"p0"), ("frames/1", b"p1"), ("frames/2", b"p2")]
    assert len([p for p in got if not isinstance(p, Publish)]) == 3  # the three PUBACKs
    c.close()


def test_text_frame_closes_the_connection(make_broker) -> None:
    b = make_broker(config(WS))
    c = RawWs(f"ws://127.0.0.1:{port(b, 1)}/mqtt")
    c.send(connect_packet("texter"))
    assert isinstance(c.recv(), ConnAck)
    # [MQTT-6.0.0-1] only binary frames; anything else closes the network connection.
    c.ws.send("\x30\x05\x00\x01ahi")
    with pytest.raises(ConnectionClosed) as caught:
        c.recv()
    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == 1003
    b.wait_offline("texter")


def test_output_of_one_loop_iteration_is_one_frame(make_broker) -> None:
    b = make_broker(config(WS))
    c = RawWs(f"ws://127.0.0.1:{port(b, 1)}/mqtt")
    c.send(connect_packet() + subscribe_packet("batch/#"))
    assert isinstance(c.recv(), ConnAck)
    assert isinstance(c.recv(), SubAck)

    async def burst() -> None:
        assert b.broker is not None
        for i in range(20):
            await b.broker.publish(f"batch/{i}", b"m")

    b.run(burst())
    frame = c.recv_message()
    assert [p.topic for p in frame if isinstance(p, Publish)] == [f"batch/{i}" for i in range(20)]
    c.close()


def test_shutdown_sends_disconnect_then_closes(make_broker) -> None:
    b = make_broker(config(WS))
    c = RawWs(f"ws://127.0.0.1:{port(b, 1)}/mqtt")
    c.send(connect_packet())
    assert isinstance(c.recv(), ConnAck)
    b.stop()
    disconnect = c.recv()
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == ReasonCode.SERVER_SHUTTING_DOWN
    with pytest.raises(ConnectionClosed) as caught:
        c.recv()
    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == 1000


class Flooder:
    """A raw TCP publisher that notices when the broker stops reading it (never cutting a packet)."""

    def __init__(self, tcp_port: int, packet: bytes) -> None:
        self.sock = socket.create_connection(("127.0.0.1", tcp_port), timeout=TIMEOUT)
        self.sock.sendall(connect_packet("flooder"))
        assert self.sock.recv(64)[:1] == b"\x20"  # CONNACK
        self.packet = memoryview(packet)
        self.offset = 0  # into the packet being sent
        self.sent = 0  # whole packets

    def send(self, count: int, stall: float) -> bool:
        """Send ``count`` more packets; False if the socket accepted nothing for ``stall`` seconds."""
        self.sock.settimeout(stall)
        target = self.sent + count
        while self.sent < target or self.offset:
            try:
                self.offset += self.sock.send(self.packet[self.offset :])
            except TimeoutError:
                return False
            if self.offset == len(self.packet):
                self.offset = 0
                self.sent += 1
        return True


def test_a_slow_websocket_subscriber_never_slows_the_publisher(make_broker) -> None:
    """The rules of TCP hold over WebSocket: a subscriber that stops reading loses its own QoS 0
    messages beyond max_write_buffer; the publisher feeding it is never paused; once it reads again,
    messages reach it again."""
    b = make_broker(config(WS))
    # max_queue=1: the client stops reading its socket once a message waits unread.
    slow = RawWs(f"ws://127.0.0.1:{port(b, 1)}/mqtt", max_queue=1)
    slow.send(connect_packet("slow") + subscribe_packet("flood/#"))
    assert isinstance(slow.recv(), ConnAck)
    assert isinstance(slow.recv(), SubAck)
    flooder = Flooder(port(b, 0), encode(Publish(topic="flood/x", payload=b"\xaa" * 65536), V5_WIRE))
    # ~65 MB: far more than every socket buffer on the way and than max_write_buffer (1 MiB).
    assert flooder.send(1000, stall=TIMEOUT), "the publisher was slowed down by one slow subscriber"

    def state() -> tuple[bool, bool, int]:
        slow_link = b.core.clients["slow"].link
        return slow_link.congested, b.core.clients["flooder"].link._reading_paused, slow_link._held

    congested, publisher_paused, held = b.call(state)
    assert congested and not publisher_paused
    assert held <= 1024 * 1024 + 512 * 1024
    assert b.call(lambda: b.core.clients["slow"].messages_dropped) > 0

    # The subscriber reads again: it drains, and new messages reach it.
    got: list[Packet] = []
    draining = threading.Event()

    def drain() -> None:
        while not draining.is_set():
            try:
                got.extend(p for p in slow.recv_message(0.5) if isinstance(p, Publish))
            except TimeoutError:
                continue
            except ConnectionClosed:
                return

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while b.call(state)[0]:
            assert time.monotonic() < deadline, "still congested"
            time.sleep(0.05)
        sent = b.call(lambda: b.core.stats.messages_sent)
        # 640 KiB: within max_write_buffer, so none of them is dropped even if it reads slowly.
        assert flooder.send(10, stall=TIMEOUT)
        while len(got) < sent + 10:
            assert time.monotonic() < deadline + TIMEOUT, "new messages did not reach the subscriber"
            time.sleep(0.05)
    finally:
        draining.set()
        reader.join(5)
        flooder.sock.close()
        slow.close()


# --- the zanzara command (uvloop) -------------------------------------------------------------------


def test_command_serves_websocket_and_tls_under_uvloop(tmp_path: Path, node: str, pki: Pki) -> None:
    ports = {name: free_port() for name in ("mqtt", "ws", "mqtts", "wss")}
    cfg = tmp_path / "zanzara.toml"
    tls = f'certfile = "{pki.server.cert}"\nkeyfile = "{pki.server.key}"\ncafile = "{pki.ca}"\n'
    cfg.write_text(
        "allow_anonymous = false\n"
        f"[[listeners]]\nport = {ports['mqtt']}\n"
        f'[[listeners]]\nprotocol = "ws"\nport = {ports["ws"]}\n'
        f"[[listeners]]\nport = {ports['mqtts']}\n{tls}use_identity_as_username = true\n"
        f'[[listeners]]\nprotocol = "ws"\nport = {ports["wss"]}\n{tls}use_identity_as_username = true\n'
        '[storage]\nbackend = "memory"\n'
    )
    proc, log = start("-c", str(cfg), cwd=tmp_path)
    try:
        banner = [line for line in log.splitlines() if "listening on" in line]
        assert len(banner) == 4, log  # each listener announced once
        assert "(uvloop event loop)" in log
        assert banner[3].endswith(f"wss://127.0.0.1:{ports['wss']}/")  # any path: the root is shown
        # The certificate is the credential (anonymous clients are refused here).
        with_cert = {"ca": str(pki.ca), "cert": str(pki.client.cert), "key": str(pki.client.key)}
        device = paho_client(ports["mqtts"], ca=pki.ca, cert=pki.client)
        assert device.reason_code == 0
        assert device.subscribe("cmd/#", qos=1) == [1]
        for url, tls_options in (
            (f"wss://127.0.0.1:{ports['wss']}/mqtt", with_cert),
            (f"ws://127.0.0.1:{ports['ws']}/mqtt", {}),
        ):
            peer = JsPeer(
                node, url=url, publish=[{"topic": "cmd/js", "payload": url, "qos": 1}], **tls_options
            )
            try:
                if tls_options:
                    assert peer.next() == {"event": "ready"}
                    peer.finish()
                    assert device.expect().payload == url.encode()
                else:  # plain WebSocket, no username: anonymous, refused
                    assert peer.proc.wait(TIMEOUT) == 1
            finally:
                peer.close()
        anonymous = paho_client(ports["mqtts"], ca=pki.ca)
        assert anonymous.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD
        anonymous.client.loop_stop()
        device.disconnect()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
