"""MQTT.js's browser bundle served by a WebSocket listener with ``bundle = true`` (Mosca's ``http.bundle``).

Fetched with ``http.client`` from a real broker and compared with the file the npm package
ships (``src/zanzara/static/``, refreshed by ``scripts/update-mqtt-js.sh``); then loaded by
headless Chromium from a page on the broker's own origin, which connects back to the broker
over WebSocket with it and publishes to a paho client: the page needs nothing else.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import re
import signal
import subprocess
import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from zanzara.config import ListenerConfig, config_from_dict
from zanzara.errors import ConfigError
from zanzara.mqtt.packets import ConnAck

from brokerthread import BrokerThread
from clients import PahoClient
from peers import require
from wsclient import TIMEOUT, RawWs, config, connect_packet, port

STATIC = resources.files("zanzara") / "static"
BUNDLE = STATIC.joinpath("mqtt.min.js").read_bytes()
PAGE = """<!doctype html>
<meta charset="utf-8">
<title>bundle</title>
<script src="/mqtt.min.js"></script>
<script>
"use strict";
// Loaded from the broker, connected to the broker: one origin, nothing else.
const topic = new URLSearchParams(location.search).get("topic");
const client = mqtt.connect(`ws://${location.host}/`, { protocolVersion: 5, reconnectPeriod: 0 });
client.on("connect", () => {
  client.publish(topic, `bundle ok in ${navigator.userAgent}`, { qos: 1 }, () => client.end());
});
</script>
"""


def fetch(
    b: BrokerThread, target: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port(b, 1), timeout=TIMEOUT)
    try:
        conn.request(method, target, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text(PAGE)
    # A file of the same name in the folder: the listener's bundle setting wins over it.
    (www / "mqtt.min.js").write_text("// not MQTT.js\n")
    return www


@pytest.fixture
def broker(make_broker: type[BrokerThread], site: Path) -> BrokerThread:
    return make_broker(config(ListenerConfig(protocol="ws", port=0, static_dir=str(site), bundle=True)))


# --- the packaged file ------------------------------------------------------------------------------


def test_the_package_ships_mqtt_js_with_its_licence() -> None:
    readme = STATIC.joinpath("README.md").read_text()
    assert BUNDLE.startswith(b'"use strict";var mqtt=')  # MQTT.js's browser build: a global `mqtt`
    assert hashlib.sha256(BUNDLE).hexdigest() in readme  # the file the update script fetched
    assert re.search(r"MQTT\.js 5\.\d+\.\d+'s browser bundle", readme)
    assert "MIT License" in STATIC.joinpath("mqtt.LICENSE.md").read_text()


# --- over HTTP --------------------------------------------------------------------------------------


def test_get_serves_the_bundle(broker: BrokerThread) -> None:
    status, headers, body = fetch(broker, "/mqtt.min.js")
    assert status == 200
    assert body == BUNDLE
    assert headers["content-type"] == "application/javascript; charset=utf-8"
    assert headers["content-length"] == str(len(BUNDLE))
    assert "max-age=" in headers["cache-control"]
    assert headers["etag"].startswith('"')
    # A query string (a cache buster) names the same file.
    assert fetch(broker, "/mqtt.min.js?v=5")[2] == BUNDLE


def test_head_sends_the_headers_only(broker: BrokerThread) -> None:
    status, headers, body = fetch(broker, "/mqtt.min.js", "HEAD")
    # [RFC 9110 9.3.2] the same header fields as GET, no content.
    assert (status, body) == (200, b"")
    assert headers["content-length"] == str(len(BUNDLE))


def test_revalidation_with_the_etag_gets_304(broker: BrokerThread) -> None:
    etag = fetch(broker, "/mqtt.min.js")[1]["etag"]
    # [RFC 9110 13.1.2] If-None-Match matching the current entity tag: 304, no content.
    status, headers, body = fetch(broker, "/mqtt.min.js", headers={"If-None-Match": f'"other", W/{etag}'})
    assert (status, body) == (304, b"")
    assert headers["etag"] == etag
    assert fetch(broker, "/mqtt.min.js", headers={"If-None-Match": '"other"'})[0] == 200


def test_gzip_for_clients_that_accept_it(broker: BrokerThread) -> None:
    status, headers, body = fetch(broker, "/mqtt.min.js", headers={"Accept-Encoding": "br, gzip;q=0.8"})
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert headers["vary"] == "Accept-Encoding"
    assert len(body) < len(BUNDLE) // 2
    assert gzip.decompress(body) == BUNDLE
    # [RFC 9110 12.5.3] q=0: not acceptable.
    status, headers, body = fetch(broker, "/mqtt.min.js", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in headers
    assert body == BUNDLE


def test_other_methods_are_not_allowed(broker: BrokerThread) -> None:
    status, headers, _ = fetch(broker, "/mqtt.min.js", "POST")
    assert status == 405
    assert headers["allow"] == "GET, HEAD"


def test_the_static_folder_and_mqtt_still_work(broker: BrokerThread) -> None:
    assert fetch(broker, "/")[2] == PAGE.encode()
    ws = RawWs(f"ws://127.0.0.1:{port(broker, 1)}/mqtt.min.js")  # a handshake is MQTT, on any path
    try:
        ws.send(connect_packet())
        assert isinstance(ws.recv(), ConnAck)
    finally:
        ws.close()


def test_with_a_mqtt_path_and_no_folder(make_broker: type[BrokerThread]) -> None:
    b = make_broker(config(ListenerConfig(protocol="ws", port=0, path="/mqtt", bundle=True)))
    assert fetch(b, "/mqtt.min.js")[2] == BUNDLE
    assert fetch(b, "/index.html")[0] == 404
    ws = RawWs(f"ws://127.0.0.1:{port(b, 1)}/mqtt")
    try:
        ws.send(connect_packet())
        assert isinstance(ws.recv(), ConnAck)
    finally:
        ws.close()


def test_off_by_default(make_broker: type[BrokerThread], site: Path) -> None:
    b = make_broker(config(ListenerConfig(protocol="ws", port=0, static_dir=str(site))))
    # Without it, the folder's own file of that name is what is served.
    assert fetch(b, "/mqtt.min.js")[2] == b"// not MQTT.js\n"
    bare = make_broker(config(ListenerConfig(protocol="ws", port=0)))
    assert fetch(bare, "/mqtt.min.js")[0] == 426  # plain HTTP only asks for the upgrade


def test_config_refuses_bundle_on_a_tcp_listener() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"listeners": [{"port": 0, "bundle": True}]})
    assert caught.value.field == "listeners.0.bundle"
    assert config_from_dict({"listeners": [{"protocol": "ws", "bundle": True}]}).listeners[0].bundle


# --- in a browser -----------------------------------------------------------------------------------


@pytest.fixture
def chromium_profile(tmp_path: Path) -> Iterator[Path]:
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    yield profile


def test_a_page_on_the_broker_uses_the_bundle_in_chromium(
    make_broker: type[BrokerThread], site: Path, chromium_profile: Path
) -> None:
    """The page and MQTT.js both come from the broker; the page connects back to it and publishes."""
    binary = require("chromium")
    b = make_broker(config(ListenerConfig(protocol="ws", port=0, static_dir=str(site), bundle=True)))
    topic = f"bundle/{uuid.uuid4().hex[:8]}"
    paho = PahoClient(port(b, 0))
    assert paho.subscribe(topic, 1) == [1]
    log = chromium_profile / "chromium.log"
    args = [
        binary,
        "--headless",
        "--no-sandbox",  # the tests may run as root, where Chromium's sandbox refuses to start
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        f"--user-data-dir={chromium_profile}",
        "--enable-logging=stderr",
        f"http://127.0.0.1:{port(b, 1)}/?topic={topic}",
    ]
    with log.open("w") as out:
        # Its own process group, so that the renderers end with it.
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        try:
            message = paho.expect(timeout=20)
        except AssertionError:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise AssertionError(f"the page published nothing; Chromium's log:\n{tail}") from None
        assert message.topic == topic
        assert message.payload.decode().startswith("bundle ok in ")
        assert "HeadlessChrome" in message.payload.decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(TIMEOUT)
        paho.disconnect()
