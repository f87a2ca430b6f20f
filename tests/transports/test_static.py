"""A static folder served over plain HTTP on a WebSocket listener (``static_dir``).

Real peers only: ``http.client`` sends request targets byte for byte (no
normalisation of ``..``), and MQTT runs on the same port through the
``websockets`` client (RawWs) and paho over TCP.
"""

from __future__ import annotations

import http.client
import os
import socket
import uuid
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from zanzara.config import ListenerConfig, config_from_dict
from zanzara.errors import ConfigError
from zanzara.mqtt.packets import ConnAck, Publish, SubAck

from brokerthread import BrokerThread
from clients import PahoClient
from wsclient import TIMEOUT, RawWs, config, connect_packet, port, subscribe_packet

SECRET = b"top secret, outside the folder\n"
INDEX = b"<!doctype html><title>app</title><script src=app.js></script>\n"
SCRIPT = b"console.log('hello from the same origin');\n"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """``tmp_path/www`` (the static folder) next to ``tmp_path/secret`` (which must never be served)."""
    (tmp_path / "secret").write_bytes(SECRET)
    www = tmp_path / "www"
    (www / "css").mkdir(parents=True)
    (www / "empty").mkdir()
    (www / "index.html").write_bytes(INDEX)
    (www / "app.js").write_bytes(SCRIPT)
    (www / "css" / "site.css").write_bytes(b"body { margin: 0 }\n")
    (www / "data.unknownext").write_bytes(b"\x00\x01")
    os.symlink(tmp_path / "secret", www / "leak")  # a link leading out of the folder
    os.symlink(tmp_path, www / "up")
    os.symlink(www / "app.js", www / "alias.js")  # a link that stays inside
    return www


@pytest.fixture
def broker(make_broker: type[BrokerThread], site: Path) -> BrokerThread:
    return make_broker(config(ListenerConfig(protocol="ws", port=0, static_dir=str(site))))


def fetch(b: BrokerThread, target: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port(b, 1), timeout=TIMEOUT)
    try:
        conn.request(method, target)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


# --- files ------------------------------------------------------------------------------------------


def test_index_html_at_the_root(broker: BrokerThread) -> None:
    status, headers, body = fetch(broker, "/")
    assert (status, body) == (200, INDEX)
    assert headers["content-type"] == "text/html"
    assert headers["content-length"] == str(len(INDEX))


@pytest.mark.parametrize(
    ("target", "content_type", "content"),
    [
        ("/app.js", ("application/javascript", "text/javascript"), SCRIPT),
        ("/css/site.css?v=3", ("text/css",), b"body { margin: 0 }\n"),
        ("/data.unknownext", ("application/octet-stream",), b"\x00\x01"),
        ("/%61pp.js", ("application/javascript", "text/javascript"), SCRIPT),  # percent-encoded "a"
        ("/alias.js", ("application/javascript", "text/javascript"), SCRIPT),
    ],
)
def test_file_with_its_content_type(
    broker: BrokerThread, target: str, content_type: tuple[str, ...], content: bytes
) -> None:
    status, headers, body = fetch(broker, target)
    assert (status, body) == (200, content)
    assert headers["content-type"] in content_type
    assert headers["x-content-type-options"] == "nosniff"


def test_head_sends_the_headers_without_the_body(broker: BrokerThread) -> None:
    status, headers, body = fetch(broker, "/app.js", method="HEAD")
    assert (status, body) == (200, b"")
    assert headers["content-length"] == str(len(SCRIPT))


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods_are_refused(broker: BrokerThread, method: str) -> None:
    status, headers, _ = fetch(broker, "/app.js", method=method)
    assert status == 405
    assert headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("target", ["/missing.html", "/css/", "/empty", "/app.js/x", "/%ff"])
def test_missing_is_404(broker: BrokerThread, target: str) -> None:
    status, _, body = fetch(broker, target)
    assert (status, body) == (404, b"Not Found\n")


# --- nothing outside the folder ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/../secret",
        "/%2e%2e/secret",
        "/%2E%2E%2Fsecret",
        "/css/../../secret",
        "/css/%2e%2e/%2e%2e/secret",
        "/..%2fsecret",
        "/..%5csecret",
        "//../secret",
        "/leak",  # symbolic link to the file outside
        "/up/secret",  # symbolic link to the parent directory
        "/secret%00.html",
    ],
)
def test_traversal_is_404_and_never_the_file_outside(broker: BrokerThread, target: str) -> None:
    status, _, body = fetch(broker, target)
    assert status == 404
    assert SECRET not in body


def test_traversal_in_a_raw_request_line(broker: BrokerThread, tmp_path: Path) -> None:
    # A request target that no HTTP client library would build: an absolute file path.
    with socket.create_connection(("127.0.0.1", port(broker, 1)), timeout=TIMEOUT) as sock:
        sock.sendall(f"GET {tmp_path / 'secret'} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 404 ")
    assert SECRET not in reply


# --- MQTT on the same port --------------------------------------------------------------------------


def test_mqtt_over_websocket_works_alongside(broker: BrokerThread) -> None:
    topic = f"static/{uuid.uuid4().hex[:8]}"
    ws = RawWs(f"ws://127.0.0.1:{port(broker, 1)}/mqtt")
    try:
        ws.send(connect_packet())
        assert isinstance(ws.recv(), ConnAck)
        ws.send(subscribe_packet(topic))
        assert ws.recv() == SubAck(packet_id=1, reason_codes=(0,))
        # Files are served while the MQTT connection is open on the same port...
        assert fetch(broker, "/")[0] == 200
        assert fetch(broker, "/../secret")[0] == 404
        # ...and it still gets its messages.
        tcp = PahoClient(port(broker, 0))
        tcp.publish(topic, b"after the page loaded", qos=0)
        message = ws.recv()
        assert isinstance(message, Publish)
        assert (message.topic, message.payload) == (topic, b"after the page loaded")
        tcp.disconnect()
    finally:
        ws.close()


def test_handshake_on_any_path_opens_mqtt(broker: BrokerThread) -> None:
    """Without ``path``, a WebSocket handshake on any path is MQTT, a plain request a file request."""
    url = f"ws://127.0.0.1:{port(broker, 1)}"
    for path in ("/", "/index.html", "/mqtt"):
        ws = RawWs(f"{url}{path}")
        ws.send(connect_packet())
        assert isinstance(ws.recv(), ConnAck)
        ws.close()
    # A WebSocket client without the mqtt subprotocol: 400, as without static_dir.
    with pytest.raises(InvalidStatus) as caught:
        RawWs(f"{url}/mqtt", subprotocols=[])
    assert caught.value.response.status_code == 400
    assert fetch(broker, "/mqtt")[0] == 404  # no such file


def test_a_configured_mqtt_path_is_unchanged(make_broker: type[BrokerThread], site: Path) -> None:
    b = make_broker(config(ListenerConfig(protocol="ws", port=0, static_dir=str(site), path="/mqtt")))
    url = f"ws://127.0.0.1:{port(b, 1)}"
    ws = RawWs(f"{url}/mqtt")
    ws.send(connect_packet())
    assert isinstance(ws.recv(), ConnAck)
    ws.close()
    # A WebSocket handshake on another path is not a file request: 404.
    with pytest.raises(InvalidStatus) as caught:
        RawWs(f"{url}/index.html")
    assert caught.value.response.status_code == 404
    # Plain HTTP on the MQTT path asks for an upgrade, it is never a file.
    status, _, body = fetch(b, "/mqtt")
    assert status == 426
    assert INDEX not in body
    assert fetch(b, "/")[0] == 200


def test_without_static_dir_plain_http_asks_for_an_upgrade(make_broker: type[BrokerThread]) -> None:
    b = make_broker(config(ListenerConfig(protocol="ws", port=0)))
    assert fetch(b, "/")[0] == 426
    restricted = make_broker(config(ListenerConfig(protocol="ws", port=0, path="/mqtt")))
    assert fetch(restricted, "/")[0] == 404


# --- configuration ----------------------------------------------------------------------------------


def test_config_refuses_a_missing_directory(tmp_path: Path) -> None:
    data = {"listeners": [{"port": 0}, {"protocol": "ws", "port": 0, "static_dir": str(tmp_path / "nope")}]}
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data)
    assert caught.value.field == "listeners.1.static_dir"
    assert caught.value.problem == f"{tmp_path / 'nope'} is not an existing directory"


def test_config_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"listeners": [{"protocol": "ws", "static_dir": str(tmp_path / "f")}]})
    assert caught.value.field == "listeners.0.static_dir"


def test_config_static_dir_is_for_websocket_listeners_only(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"listeners": [{"protocol": "mqtt", "static_dir": str(tmp_path)}]})
    assert caught.value.field == "listeners.0.static_dir"
    assert caught.value.problem == 'only used when protocol = "ws"'


def test_config_accepts_an_existing_directory(tmp_path: Path) -> None:
    config = config_from_dict({"listeners": [{"protocol": "ws", "static_dir": str(tmp_path)}]})
    assert config.listeners[0].static_dir == str(tmp_path)
