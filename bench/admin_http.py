"""Messages per second through the admin API's push endpoints, on one core.

usage: python bench/admin_http.py [ROUNDS]

Starts the ``zanzara`` command pinned to CPU 0 (``taskset -c 0``) with the admin API on, in a
temporary directory, and pins itself to CPU 1.  A few connected MQTT 5 subscribers (paho,
reading in their own threads) and some offline persistent sessions, each on a topic of its own
at QoS 1, so each notification (to one device, the sessions in turn) is routed for real: sent
to a connected one, or queued and stored for an offline one.  The offline queues are purged
before each run.  Then, over one keep-alive HTTP connection (httpx), ROUNDS times each
(default 3):

- single ``POST /api/v1/publish``, QoS 0 (memory store) and QoS 1 (SQLite store: each answered
  once committed);
- bulk ``POST /api/v1/publish/bulk`` of 100 and of 1000 messages per request, QoS 1, SQLite;
- the issue's case: 10 bulk requests of 1000 (10,000 notifications), timed end to end;
- the same with every session subscribed to every message (each message stored and sent 20
  times: a broadcast, not what a push service's notifications are).

Prints the median and the range of each, in messages per second.  Time figures only: a noisy
machine gives noisy numbers, so compare runs made one after the other.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

SUBSCRIBERS = 4
OFFLINE = 16
PAYLOAD = "x" * 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def broker(backend: str) -> Iterator[tuple[int, str]]:
    """The zanzara command on CPU 0; yields its MQTT port and admin URL."""
    workdir = tempfile.mkdtemp(prefix="zanzara-bench-")
    port, admin = free_port(), free_port()
    env = dict(os.environ, ZANZARA_STORAGE__BACKEND=backend, ZANZARA_PUSH__TRACK_DELIVERIES="false")
    zanzara = shutil.which("zanzara") or os.path.join(os.path.dirname(sys.executable), "zanzara")
    cmd = ["taskset", "-c", "0", zanzara, "--port", str(port), "--ws-port", "0", "--admin-port", str(admin)]
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{admin}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the broker did not get ready")
            time.sleep(0.1)
        yield port, url
    finally:
        proc.terminate()
        proc.wait(15)
        shutil.rmtree(workdir, ignore_errors=True)


def mqtt_client(port: int, client_id: str, broadcast: bool) -> paho.Client:
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    c.connect("127.0.0.1", port, clean_start=False, properties=props)
    c.loop_start()
    c.subscribe("push/#" if broadcast else f"push/{client_id}", qos=1)
    return c


DEVICES = [f"offline-{i}" for i in range(OFFLINE)] + [f"online-{i}" for i in range(SUBSCRIBERS)]


@contextmanager
def audience(port: int, broadcast: bool = False) -> Iterator[list[int]]:
    """Connected subscribers (yields a list of the messages each got) and offline sessions, each
    on its own topic ``push/<client id>`` (a push service's one device per notification), or all
    on ``push/#`` (``broadcast``: every message goes to all of them)."""
    for i in range(OFFLINE):
        c = mqtt_client(port, f"offline-{i}", broadcast)
        time.sleep(0.05)
        c.disconnect()
        c.loop_stop()
    counts = [0] * SUBSCRIBERS
    online = []
    for i in range(SUBSCRIBERS):
        c = mqtt_client(port, f"online-{i}", broadcast)

        def got(client: Any, userdata: Any, message: Any, i: int = i) -> None:
            counts[i] += 1

        c.on_message = got
        online.append(c)
    time.sleep(0.3)
    try:
        yield counts
    finally:
        for c in online:
            c.disconnect()
            c.loop_stop()


def purge(http: httpx.Client) -> None:
    """Empty the offline sessions' queues, so that every run starts alike (full queues would
    drop their oldest messages, one more store write each)."""
    for device in DEVICES[:OFFLINE]:
        http.delete(f"/api/v1/clients/{device}/queue").raise_for_status()


def rate(run: Callable[[], int], rounds: int, http: httpx.Client) -> tuple[float, float, float]:
    """Median, lowest and highest messages per second of ``rounds`` runs of ``run``."""
    rates = []
    for _ in range(rounds):
        purge(http)
        time.sleep(0.5)  # the purge's store writes done
        start = time.perf_counter()
        n = run()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates), min(rates), max(rates)


def single(http: httpx.Client, qos: int, count: int) -> Callable[[], int]:
    def run() -> int:
        for i in range(count):
            http.post(
                "/api/v1/publish",
                json={"topic": f"push/{DEVICES[i % len(DEVICES)]}", "payload": PAYLOAD, "qos": qos},
            ).raise_for_status()
        return count

    return run


def bulk(http: httpx.Client, per_request: int, requests: int) -> Callable[[], int]:
    topics = [f"push/{DEVICES[i % len(DEVICES)]}" for i in range(per_request)]
    body = {"messages": [{"topic": t, "payload": PAYLOAD, "qos": 1} for t in topics]}

    def run() -> int:
        for _ in range(requests):
            answer = http.post("/api/v1/publish/bulk", json=body)
            answer.raise_for_status()
            assert all(r["ok"] for r in answer.json()["results"])
        return per_request * requests

    return run


def report(name: str, figures: tuple[float, float, float]) -> None:
    median, low, high = figures
    print(f"{name:<44} {median:>9,.0f} msg/s  ({low:,.0f} - {high:,.0f})", flush=True)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    os.sched_setaffinity(0, {1})
    print(f"{SUBSCRIBERS} subscribers connected, {OFFLINE} offline sessions, {len(PAYLOAD)}-byte payloads")
    for backend in ("memory", "sqlite"):
        with broker(backend) as (port, url), audience(port), httpx.Client(base_url=url, timeout=60) as http:
            if backend == "memory":
                report("publish, QoS 0, memory", rate(single(http, 0, 2000), rounds, http))
                continue
            report("publish, QoS 1, sqlite", rate(single(http, 1, 500), rounds, http))
            report("publish/bulk 100 per request, QoS 1, sqlite", rate(bulk(http, 100, 20), rounds, http))
            report("publish/bulk 1000 per request, QoS 1, sqlite", rate(bulk(http, 1000, 3), rounds, http))
            report("10,000 as 10 x bulk 1000, QoS 1, sqlite", rate(bulk(http, 1000, 10), rounds, http))
    with (
        broker("sqlite") as (port, url),
        audience(port, True),
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        n = SUBSCRIBERS + OFFLINE
        report(f"10,000 as 10 x bulk 1000, to all {n} sessions", rate(bulk(http, 1000, 10), rounds, http))


if __name__ == "__main__":
    main()
