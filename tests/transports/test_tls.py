"""MQTT over TLS with real peers: paho-mqtt and mosquitto_pub/sub, certificates made at test time.

Client certificates follow Mosquitto: ``require_certificate`` refuses a client
without one, ``cafile`` alone verifies a certificate a client presents, and
``use_identity_as_username`` makes the certificate's Common Name the username
every hook sees.
"""

from __future__ import annotations

import logging
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from zanzara import ReasonCode
from zanzara.config import Config, ListenerConfig, StorageConfig, config_from_dict
from zanzara.errors import ConfigError
from zanzara.hooks import ConnectRequest
from zanzara.mqtt.codec import Reader, encode
from zanzara.mqtt.enums import ProtocolVersion
from zanzara.mqtt.packets import ConnAck, Connect

from brokerthread import BrokerThread
from certs import CLIENT_CN, Pki, make_pki, paho_client
from clients import V5, V311, PahoClient
from peers import require

ZANZARA = Path(sys.executable).with_name("zanzara")
V5_WIRE = ProtocolVersion.MQTT5


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_listener(pki: Pki, **options: object) -> ListenerConfig:
    return ListenerConfig(port=0, certfile=str(pki.server.cert), keyfile=str(pki.server.key), **options)  # type: ignore[arg-type]


def config(*listeners: ListenerConfig) -> Config:
    """A plain TCP listener (index 0) and the given ones, memory storage."""
    return Config(storage=StorageConfig(backend="memory"), listeners=(ListenerConfig(port=0), *listeners))


def port(b: BrokerThread, index: int) -> int:
    assert b.broker is not None
    return b.broker.addresses[index][1]


def tls_handshake(
    port: int, pki: Pki, *, cert: Path | None = None, key: Path | None = None, **ctx_options: object
) -> ssl.SSLSocket:
    """A TLS connection that has sent CONNECT and read the CONNACK; raises ssl/OS errors when refused."""
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    for name, value in ctx_options.items():
        if name == "ciphers":
            ctx.set_ciphers(str(value))
        else:
            setattr(ctx, name, value)
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    try:
        # TLS 1.3 reports a refused client certificate only on the first read.
        sock.sendall(encode(Connect(protocol_version=V5_WIRE, client_id="raw-tls"), V5_WIRE))
        reader = Reader(role="client", version=V5_WIRE)
        while True:
            data = sock.recv(4096)
            if not data:
                raise ConnectionError("closed by the broker")
            reader.feed(data)
            packets = list(reader.read_packets())
            if packets:
                assert isinstance(packets[0], ConnAck)
                return sock
    except BaseException:
        sock.close()
        raise


def expect_refused(port: int, pki: Pki, **kw: object) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_handshake(port, pki, **kw)  # type: ignore[arg-type]


def roundtrip(sub: PahoClient, pub: PahoClient, topic: str, payload: bytes = b"hello", qos: int = 1) -> None:
    assert sub.subscribe(topic, qos=qos) == [qos]
    pub.publish(topic, payload, qos=qos)
    msg = sub.expect()
    assert (msg.topic, msg.payload) == (topic, payload)


# --- server certificate only ---------------------------------------------------------------------


@pytest.mark.parametrize("version", [V311, V5])
def test_paho_over_tls_talks_to_plain_tcp(make_broker, pki: Pki, version: int) -> None:
    b = make_broker(config(tls_listener(pki)))
    secure = paho_client(port(b, 1), ca=pki.ca, version=version)
    plain = PahoClient(port(b, 0), version=version)
    roundtrip(secure, plain, "tls/in")
    roundtrip(plain, secure, "tls/out")
    secure.disconnect()
    plain.disconnect()


def test_mosquitto_clients_over_tls(make_broker, pki: Pki) -> None:
    b = make_broker(
        config(tls_listener(pki, cafile=str(pki.ca), require_certificate=True), tls_listener(pki))
    )
    mutual, server_only = port(b, 1), port(b, 2)
    sub = subprocess.Popen(
        [require("mosquitto_sub"), "-h", "127.0.0.1", "-p", str(mutual), "--cafile", str(pki.ca),
         "--cert", str(pki.client.cert), "--key", str(pki.client.key),
         "-t", "mos/#", "-q", "1", "-C", "2", "-v", "-i", "mos-sub"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        b_wait_connected(b, "mos-sub", sub)
        for i, p in enumerate((server_only, mutual)):
            extra = ["--cert", str(pki.client.cert), "--key", str(pki.client.key)] if p == mutual else []
            subprocess.run(
                [require("mosquitto_pub"), "-h", "127.0.0.1", "-p", str(p), "--cafile", str(pki.ca), *extra,
                 "-t", f"mos/{i}", "-m", f"m{i}", "-q", "1", "-V", "mqttv5"],
                check=True, timeout=10, capture_output=True,
            )  # fmt: skip
        out, err = sub.communicate(timeout=10)
        assert out.splitlines() == ["mos/0 m0", "mos/1 m1"], err
    finally:
        sub.kill()
        sub.wait()


def b_wait_connected(b: BrokerThread, client_id: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 10
    while not b.call(lambda: client_id in b.core.clients):
        if proc.poll() is not None:
            pytest.fail(f"{client_id} exited: {proc.stderr.read() if proc.stderr else ''}")
        assert time.monotonic() < deadline, f"{client_id} did not connect"
        time.sleep(0.02)
    # Connected is not subscribed: give the SUBSCRIBE its round trip.
    time.sleep(0.2)


def test_mosquitto_pub_without_certificate_is_refused(make_broker, pki: Pki) -> None:
    b = make_broker(config(tls_listener(pki, cafile=str(pki.ca), require_certificate=True)))
    out = subprocess.run(
        [require("mosquitto_pub"), "-h", "127.0.0.1", "-p", str(port(b, 1)), "--cafile", str(pki.ca),
         "-t", "x", "-m", "y"],
        timeout=10, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode != 0


def test_plain_tcp_client_on_tls_port_fails_cleanly(make_broker, pki: Pki, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    b = make_broker(config(tls_listener(pki)))
    secure = paho_client(port(b, 1), ca=pki.ca)
    assert secure.subscribe("still/#", qos=1) == [1]
    with socket.create_connection(("127.0.0.1", port(b, 1)), timeout=5) as plain:
        plain.sendall(encode(Connect(protocol_version=V5_WIRE, client_id="plain"), V5_WIRE))
        answer = b""
        try:
            while chunk := plain.recv(4096):
                answer += chunk
        except ConnectionResetError:
            pass
    # No CONNACK (0x20): at most a TLS alert record (content type 0x15), then the socket closes.
    assert not answer.startswith(b"\x20")
    assert answer[:1] in (b"", b"\x15")
    # The TLS client never noticed.
    publisher = PahoClient(port(b, 0))
    publisher.publish("still/here", b"yes", qos=1)
    assert secure.expect().payload == b"yes"
    secure.disconnect()
    publisher.disconnect()
    # In debug mode asyncio reports every failed TLS handshake at ERROR itself ("Error on
    # transport creation"; DEBUG otherwise): its own diagnostic, not a fault of the broker.
    debug = b.loop.get_debug()
    problems = [
        r
        for r in caplog.records
        if r.levelno >= logging.ERROR
        and not (debug and r.name == "asyncio" and r.getMessage().startswith("Error on transport creation"))
    ]
    assert not problems, [r.getMessage() for r in problems]


# --- client certificates -------------------------------------------------------------------------


def test_client_certificate_on_require_certificate_listener(make_broker, pki: Pki) -> None:
    b = make_broker(config(tls_listener(pki, cafile=str(pki.ca), require_certificate=True)))
    device = paho_client(port(b, 1), ca=pki.ca, cert=pki.client)
    plain = PahoClient(port(b, 0))
    roundtrip(device, plain, "mutual/in")
    device.disconnect()
    plain.disconnect()


def test_require_certificate_refuses_client_without_one(make_broker, pki: Pki) -> None:
    b = make_broker(config(tls_listener(pki, cafile=str(pki.ca), require_certificate=True)))
    expect_refused(port(b, 1), pki)
    tls_handshake(port(b, 1), pki, cert=pki.client.cert, key=pki.client.key).close()  # still serving


@pytest.mark.parametrize("which", ["untrusted", "expired"])
@pytest.mark.parametrize("required", [True, False], ids=["required", "optional"])
def test_bad_client_certificate_is_refused(make_broker, pki: Pki, which: str, required: bool) -> None:
    b = make_broker(config(tls_listener(pki, cafile=str(pki.ca), require_certificate=required)))
    bad = getattr(pki, which)
    expect_refused(port(b, 1), pki, cert=bad.cert, key=bad.key)
    tls_handshake(port(b, 1), pki, cert=pki.client.cert, key=pki.client.key).close()
    # A failed handshake leaves nothing behind in the broker.
    assert b.broker is not None
    deadline = time.monotonic() + 5
    while b.call(lambda: len(b.broker._connections)):
        assert time.monotonic() < deadline, "a connection outlived its socket"
        time.sleep(0.02)


def test_client_refuses_server_certificate_from_unknown_ca(make_broker, pki: Pki) -> None:
    b = make_broker(config(tls_listener(pki)))
    ctx = ssl.create_default_context(cafile=str(pki.rogue_ca))
    with (
        socket.create_connection(("127.0.0.1", port(b, 1)), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ctx.wrap_socket(raw, server_hostname="127.0.0.1")


class Recorder:
    """An authentication hook that records what it was asked, and lets everyone in."""

    def __init__(self) -> None:
        self.requests: list[ConnectRequest] = []
        self.lock = threading.Lock()

    async def authenticate(self, request: ConnectRequest) -> ReasonCode:
        with self.lock:
            self.requests.append(request)
        return ReasonCode.SUCCESS


def test_use_identity_as_username_reaches_the_authenticate_hook(make_broker, pki: Pki) -> None:
    hook = Recorder()
    listener = tls_listener(pki, cafile=str(pki.ca), require_certificate=True, use_identity_as_username=True)
    b = make_broker(
        config(listener).model_copy(update={"allow_anonymous": False}),
        setup=lambda broker: broker.add_authenticator(hook),
    )
    # The CONNECT's own username and password are replaced by the certificate's identity.
    device = paho_client(port(b, 1), ca=pki.ca, cert=pki.client, username="spoofed", password="pw")
    assert device.reason_code == 0
    [request] = hook.requests
    assert request.client.username == CLIENT_CN
    assert request.password is None
    assert request.client.listener is not None
    info = b.call(lambda: b.core.clients[device.client_id].info)
    assert info.username == CLIENT_CN
    device.disconnect()
    # Elsewhere the username is the client's own.
    plain = PahoClient(port(b, 0), username="someone", password="pw")
    assert hook.requests[-1].client.username == "someone"
    plain.disconnect()


@pytest.mark.parametrize("version", [V311, V5])
def test_use_identity_as_username_refuses_clients_without_identity(
    make_broker, pki: Pki, version: int
) -> None:
    # require_certificate off: the TLS handshake lets them in, the CONNECT is refused (as Mosquitto).
    b = make_broker(config(tls_listener(pki, cafile=str(pki.ca), use_identity_as_username=True)))
    for cert in (None, pki.no_cn):
        c = paho_client(port(b, 1), ca=pki.ca, cert=cert, username="alice", version=version)
        # v5 0x86; 3.1.1 return code 4, which paho reports as the same reason.
        assert c.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD
        c.client.loop_stop()
    ok = paho_client(port(b, 1), ca=pki.ca, cert=pki.client, version=version)
    assert ok.reason_code == 0
    ok.disconnect()


# --- versions, ciphers ---------------------------------------------------------------------------


def test_tls_version_minimum(make_broker, pki: Pki) -> None:
    b = make_broker(config(tls_listener(pki, tls_version="1.3")))
    expect_refused(port(b, 1), pki, maximum_version=ssl.TLSVersion.TLSv1_2)
    sock = tls_handshake(port(b, 1), pki)
    assert sock.version() == "TLSv1.3"
    sock.close()


def test_ciphers(make_broker, pki: Pki) -> None:
    listed, other = "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"
    b = make_broker(config(tls_listener(pki, ciphers=listed)))
    tls12 = ssl.TLSVersion.TLSv1_2
    sock = tls_handshake(port(b, 1), pki, maximum_version=tls12, ciphers=listed + ":" + other)
    assert sock.cipher()[0] == listed
    sock.close()
    expect_refused(port(b, 1), pki, maximum_version=tls12, ciphers=other)


# --- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listener", "field", "problem"),
    [
        ({"certfile": "s.crt"}, "keyfile", "required when certfile is set"),
        ({"keyfile": "s.key"}, "keyfile", "only used with TLS (set certfile and keyfile)"),
        ({"cafile": "ca.crt"}, "cafile", "only used with TLS (set certfile and keyfile)"),
        (
            {"require_certificate": True},
            "require_certificate",
            "only used with TLS (set certfile and keyfile)",
        ),
        ({"tls_version": "1.3"}, "tls_version", "only used with TLS (set certfile and keyfile)"),
        ({"ciphers": "HIGH"}, "ciphers", "only used with TLS (set certfile and keyfile)"),
        (
            {"certfile": "s.crt", "keyfile": "s.key", "require_certificate": True},
            "require_certificate",
            "needs cafile, to verify client certificates",
        ),
        (
            {"certfile": "s.crt", "keyfile": "s.key", "use_identity_as_username": True},
            "use_identity_as_username",
            "needs cafile, to verify client certificates",
        ),
        ({"certfile": "s.crt", "keyfile": "s.key", "tls_version": "1.1"}, "tls_version", None),
    ],
)
def test_tls_keys_are_validated(listener: dict[str, object], field: str, problem: str | None) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"listeners": [{"port": 1883}, listener]})
    assert caught.value.field == f"listeners.1.{field}"
    if problem is not None:
        assert caught.value.problem == problem


def test_default_ports_follow_protocol_and_tls() -> None:
    tls = {"certfile": "s.crt", "keyfile": "s.key"}
    cfg = config_from_dict(
        {
            "listeners": [
                {},
                {"protocol": "ws"},
                tls,
                {"protocol": "ws", **tls},
                {"protocol": "ws", "port": 9001},
            ]
        }
    )
    assert [lc.port for lc in cfg.listeners] == [1883, 8083, 8883, 8084, 9001]


def test_unusable_files_are_config_errors_at_start(make_broker, pki: Pki, tmp_path: Path) -> None:
    cases = [
        (tls_listener(pki).model_copy(update={"certfile": str(tmp_path / "missing.crt")}), "certfile"),
        (tls_listener(pki).model_copy(update={"keyfile": str(pki.client.key)}), "keyfile"),
        (tls_listener(pki).model_copy(update={"certfile": str(pki.server.key)}), "certfile"),
        (tls_listener(pki, cafile=str(pki.server.key)), "cafile"),
        (tls_listener(pki, ciphers="NO-SUCH-CIPHER"), "ciphers"),
    ]
    for listener, field in cases:
        with pytest.raises(ConfigError) as caught:
            make_broker(config(listener))
        assert caught.value.field == f"listeners.1.{field}", caught.value


def test_command_reports_unreadable_certificate(tmp_path: Path) -> None:
    out = subprocess.run(
        [str(ZANZARA), "--port", "0", "--ws-port", "0", "--certfile", "nope.crt", "--keyfile", "nope.key"],
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 2
    assert "config error: listeners.1.certfile: cannot read nope.crt" in out.stderr
    assert "Traceback" not in out.stderr
