"""MQTT over WebSocket from a real browser: MQTT.js's browser bundle in headless Chromium.

Debian's ``chromium`` runs a page (tests/js/browser.html) that this test serves, together with
``mqtt.min.js`` from the installed npm package, from a small HTTP server on 127.0.0.1.  The page
reports what happens by POSTing JSON events back to that server, so the browser needs no driver:
no Playwright, no DevTools protocol client, just the binary and a URL.  A missing Chromium or
MQTT.js fails the tests (``make system-deps`` installs Chromium), it never skips them.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from zanzara.config import Config, ListenerConfig, StorageConfig

from brokerthread import BrokerThread
from certs import Pki, make_pki
from clients import V5, V311, PahoClient
from peers import JS_DIR, require

TIMEOUT = 15.0
PAGE = JS_DIR / "browser.html"
BUNDLE = JS_DIR / "node_modules" / "mqtt" / "dist" / "mqtt.min.js"


class PeerServer:
    """Serves the page and the MQTT.js bundle; the page's events arrive in ``events``."""

    def __init__(self) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        files = {"/browser.html": (PAGE, "text/html"), "/mqtt.min.js": (BUNDLE, "text/javascript")}
        events = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path, content_type = files.get(self.path.split("?", 1)[0], (None, ""))
                if path is None:
                    self.send_error(HTTPStatus.NOT_FOUND)
                    return
                body = path.read_bytes()
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                events.put(json.loads(self.rfile.read(length)))
                self.send_response(HTTPStatus.NO_CONTENT)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the events are the record; per-request lines would only hide failures

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="page-server", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)


class Chromium:
    """Headless Chromium showing one page; killed (with its renderers) by ``close``."""

    def __init__(self, binary: str, url: str, profile: Path, *, ignore_certificate_errors: bool) -> None:
        args = [
            binary,
            "--headless",
            "--no-sandbox",  # the tests may run as root, where Chromium's sandbox refuses to start
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",  # page console and errors, for failure messages
        ]
        if ignore_certificate_errors:
            # The test CA is not in Chromium's trust store; the broker's TLS still runs.
            args.append("--ignore-certificate-errors")
        self.log = profile / "chromium.log"
        with self.log.open("w") as log:
            # Its own process group, so that close() ends the renderers along with the browser.
            self.proc = subprocess.Popen(
                [*args, url], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(TIMEOUT)

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


class BrowserPeer:
    """browser.html in Chromium with ``options``; ``next()`` returns its events in order."""

    def __init__(self, chromium: str, profile: Path, **options: Any) -> None:
        self.server = PeerServer()
        url = f"http://127.0.0.1:{self.server.port}/browser.html?opts={quote(json.dumps(options))}"
        self.browser = Chromium(
            chromium, url, profile, ignore_certificate_errors=str(options["url"]).startswith("wss:")
        )

    def next(self) -> dict[str, Any]:
        try:
            event = self.server.events.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"the page said nothing; Chromium's log:\n{self.browser.tail()}") from None
        assert event.get("event") != "error", f"{event['message']}\nChromium's log:\n{self.browser.tail()}"
        return event

    def close(self) -> None:
        self.browser.close()
        self.server.close()


@pytest.fixture(scope="module")
def chromium(node: str) -> str:
    """The Chromium binary, once MQTT.js (and so its browser bundle) is installed."""
    binary = require("chromium")
    if not BUNDLE.is_file():
        pytest.fail(f"{BUNDLE} is missing: is the mqtt npm package in tests/js/package.json still v5?")
    return binary


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def profile(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "chromium-profile"
    path.mkdir()
    yield path


def exchange(chromium: str, profile: Path, url: str, tcp_port: int, version: int) -> None:
    """The browser and paho (TCP) send each other messages; the browser also gets its own back."""
    tag = uuid.uuid4().hex[:6]
    paho = PahoClient(tcp_port, version=V5 if version == 5 else V311)
    assert paho.subscribe(f"web/{tag}/out/#", qos=1) == [1]
    peer = BrowserPeer(
        chromium,
        profile,
        url=url,
        protocolVersion=version,
        subscribe=f"web/{tag}/#",
        publishAfter=2,
        publish=[
            {"topic": f"web/{tag}/out/1", "payload": "from the browser, qos 1", "qos": 1},
            {"topic": f"web/{tag}/out/0", "payload": "from the browser, qos 0", "qos": 0},
        ],
        expect=4,
    )
    try:
        ready = peer.next()
        assert ready["event"] == "ready"
        assert "HeadlessChrome" in ready["userAgent"]
        paho.publish(f"web/{tag}/in/a", b"from paho, qos 1", qos=1)
        paho.publish(f"web/{tag}/in/b", "from paho, qos 0 \u2713".encode(), qos=0)
        got = [peer.next() for _ in range(4)]
        assert got == [
            {"event": "message", "topic": f"web/{tag}/in/a", "payload": "from paho, qos 1", "qos": 1},
            {"event": "message", "topic": f"web/{tag}/in/b", "payload": "from paho, qos 0 \u2713", "qos": 0},
            # Its own messages, through the broker and back (one publisher, one topic filter: in order).
            {"event": "message", "topic": f"web/{tag}/out/1", "payload": "from the browser, qos 1", "qos": 1},
            {"event": "message", "topic": f"web/{tag}/out/0", "payload": "from the browser, qos 0", "qos": 0},
        ]
        assert peer.next() == {"event": "done"}
        back = sorted((m.topic, m.payload, m.qos) for m in paho.expect_n(2))
        assert back == [
            (f"web/{tag}/out/0", b"from the browser, qos 0", 0),
            (f"web/{tag}/out/1", b"from the browser, qos 1", 1),
        ]
    finally:
        peer.close()
        paho.disconnect()


def config(ws: ListenerConfig) -> Config:
    return Config(storage=StorageConfig(backend="memory"), listeners=(ListenerConfig(port=0), ws))


def ws_port(b: BrokerThread) -> int:
    assert b.broker is not None
    return b.broker.addresses[1][1]


@pytest.mark.parametrize("version", [4, 5], ids=["3.1.1", "5"])
def test_browser_over_ws_exchanges_with_paho(make_broker, chromium: str, profile: Path, version: int) -> None:
    b = make_broker(config(ListenerConfig(protocol="ws", port=0)))
    exchange(chromium, profile, f"ws://127.0.0.1:{ws_port(b)}/mqtt", b.port, version)


def test_browser_over_wss_exchanges_with_paho(make_broker, chromium: str, profile: Path, pki: Pki) -> None:
    wss = ListenerConfig(protocol="ws", port=0, certfile=str(pki.server.cert), keyfile=str(pki.server.key))
    b = make_broker(config(wss))
    exchange(chromium, profile, f"wss://127.0.0.1:{ws_port(b)}/mqtt", b.port, 5)
