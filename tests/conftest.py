"""Shared fixtures: a real broker on a free loopback port, real MQTT clients.

The broker runs in a background thread with its own event loop, so tests can
drive blocking clients (paho-mqtt, mosquitto_pub/sub subprocesses) naturally.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from zanzara.config import Config, MqttConfig, StorageConfig

from brokerthread import BrokerThread
from peers import JS_DIR
from redisserver import RedisServer

MEMORY = Config(storage=StorageConfig(backend="memory"))

# Every `zanzara` command a test starts would serve its admin API on 18083, and tests run in
# parallel: off unless a test asks for it (ZANZARA_ADMIN__PORT in its own environment).
os.environ.setdefault("ZANZARA_ADMIN__PORT", "0")


@pytest.fixture
def broker() -> Iterator[BrokerThread]:
    with BrokerThread(MEMORY) as b:
        yield b


@pytest.fixture
def make_broker() -> Iterator[type[BrokerThread]]:
    started: list[BrokerThread] = []

    class Factory(BrokerThread):
        def __init__(
            self, config: Config | None = None, *, mqtt: MqttConfig | None = None, **kw: object
        ) -> None:
            cfg = config or MEMORY
            if mqtt is not None:
                cfg = cfg.model_copy(update={"mqtt": mqtt})
            super().__init__(cfg, **kw)  # type: ignore[arg-type]
            started.append(self)

    yield Factory
    for b in started:
        b.stop()


@pytest.fixture(scope="session")
def node() -> str:
    """Node.js with MQTT.js installed in tests/js (installed here when missing)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are required for the MQTT.js tests (apt-get install nodejs npm)")
    if not (JS_DIR / "node_modules" / "mqtt" / "package.json").is_file():
        result = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            pytest.fail(
                f"npm install in {JS_DIR} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
    return node


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session; tests keep apart by key prefix."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server
