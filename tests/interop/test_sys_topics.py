"""``$SYS`` read as Mosquitto users read it: ``mosquitto_sub -v -t '$SYS/#'`` against the real command."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from command import free_port, start
from peers import require

DEADLINE = 20.0


class SysReader:
    """mosquitto_sub -v on ``$SYS/#``: the latest payload of each topic, read as lines come."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            [require("mosquitto_sub"), "-h", "127.0.0.1", "-p", str(port), "-v", "-t", "$SYS/#"],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.latest: dict[str, str] = {}
        self.all: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def until(self, done: Callable[[dict[str, str]], bool]) -> dict[str, str]:
        """Read until ``done(latest)``, then to the end of that update; fails after DEADLINE seconds.

        Each update starts with the uptime: once it changes, the update before is complete.
        """
        deadline = time.monotonic() + DEADLINE
        seen = False
        uptime = None
        while not seen or self.latest.get("$SYS/broker/uptime") == uptime:
            if not seen and done(self.latest):
                seen, uptime = True, self.latest.get("$SYS/broker/uptime")
                continue
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"not seen in time; got {self.latest}") from None
            self.all.append(line)
            # "-v" prints "topic payload"; topics may hold a space ("retained messages/count").
            match = re.match(r"(\$SYS/broker/retained messages/count|\S+) (.*)", line)
            assert match, line
            self.latest[match[1]] = match[2]
        return self.latest

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def command(tmp_path: Path) -> Iterator[int]:
    """The `zanzara` command with $SYS every 0.2 s and presence events; its port."""
    port = free_port()
    cfg = tmp_path / "zanzara.toml"
    cfg.write_text(
        "allow_anonymous = true\nsys_interval = 0.2\nsys_presence_events = true\n"
        'sys_node_name = "node-1"\n'
        f'[[listeners]]\nhost = "127.0.0.1"\nport = {port}\n[storage]\nbackend = "sqlite"\n'
    )
    proc, _ = start("-c", str(cfg), cwd=tmp_path)
    try:
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def pub(port: int, *args: str) -> None:
    subprocess.run(
        [require("mosquitto_pub"), "-h", "127.0.0.1", "-p", str(port), *args],
        check=True,
        timeout=10,
        capture_output=True,
    )


def test_mosquitto_sub_reads_the_broker_tree(command: int) -> None:
    reader = SysReader(command)
    try:
        first = reader.until(lambda t: "$SYS/broker/uptime" in t and "$SYS/broker/version" in t)
        assert re.fullmatch(r"zanzara \S+", first["$SYS/broker/version"])
        assert re.fullmatch(r"\d+ seconds", first["$SYS/broker/uptime"])
        for i in range(5):
            pub(command, "-i", "pub-1", "-t", f"a/{i}", "-m", "hello", "-q", "1", "-r")
        tree = reader.until(
            lambda t: (
                t.get("$SYS/broker/publish/messages/received") == "5"
                and t.get("$SYS/broker/retained messages/count", "0") != "0"
                and "$SYS/brokers/node-1/clients/pub-1/disconnected" in t
            )
        )
        assert int(tree["$SYS/broker/bytes/received"]) > 5 * len("hello")
        assert int(tree["$SYS/broker/bytes/sent"]) > 0
        assert int(tree["$SYS/broker/messages/received"]) >= 5 * 3  # CONNECT, PUBLISH, DISCONNECT
        assert int(tree["$SYS/broker/clients/maximum"]) >= 1
        # The five retained messages and the $SYS tree's own.
        assert int(tree["$SYS/broker/retained messages/count"]) >= 5
        assert re.fullmatch(r"\d+\.\d\d", tree["$SYS/broker/load/publish/received/1min"])
        assert float(tree["$SYS/broker/load/connections/1min"]) > 0
        connected = json.loads(tree["$SYS/brokers/node-1/clients/pub-1/connected"])
        assert connected["client_id"] == "pub-1"
        assert connected["address"].startswith("127.0.0.1:")
        assert connected["protocol_version"] == 4
        assert json.loads(tree["$SYS/brokers/node-1/clients/pub-1/disconnected"])["reason"] == "disconnect"
    finally:
        reader.close()


def test_values_come_retained_and_not_forged(command: int) -> None:
    """A late reader gets each topic's last value (retained); a forged one never shows."""
    pub(command, "-t", "$SYS/broker/uptime", "-m", "forged", "-r", "-q", "1")
    reader = SysReader(command)
    try:
        tree = reader.until(lambda t: "$SYS/broker/version" in t and "$SYS/broker/subscriptions/count" in t)
        assert tree["$SYS/broker/version"].startswith("zanzara ")
        assert not [line for line in reader.all if "forged" in line]
    finally:
        reader.close()
