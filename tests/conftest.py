"""Shared fixtures: a real broker on a free loopback port, real MQTT clients.

The broker runs in a background thread with its own event loop, so tests can
drive blocking clients (paho-mqtt, mosquitto_pub/sub subprocesses) naturally.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from zanzara.config import Config, MqttConfig, StorageConfig

from brokerthread import BrokerThread

MEMORY = Config(storage=StorageConfig(backend="memory"))


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


def require(tool: str) -> str:
    """Path of a required external tool; fails loudly (never skips) when missing."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed; `make test` installs it (apt-get install mosquitto-clients)")
    return path
