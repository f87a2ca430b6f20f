"""A real redis-server on a free loopback port, for the Redis store's tests.

Started with AOF and ``appendfsync always`` (what the README recommends for
zanzara), in the test's own directory, so it can be stopped and started
again with its data to test a store that goes away and comes back.

``storage_section`` writes the [storage] section of a broker on SQLite or on the
session's server (conftest's ``redis_server`` fixture), for tests run on both.
"""

from __future__ import annotations

import itertools
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self, directory: Path) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is not installed; `make test` installs it (apt-get redis-server)")
        self.exe = exe
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [
                self.exe,
                "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir),
                "--save", "", "--appendonly", "yes", "--appendfsync", "always",
                "--daemonize", "no", "--logfile", str(self.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.dir / "redis.log").read_text(errors="replace")
                pytest.fail(f"redis-server exited with {self.proc.returncode}:\n{log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        pytest.fail("redis-server did not start within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_prefixes = itertools.count()


def storage_section(request: pytest.FixtureRequest, tmp_path: Path, name: str, extra: str = "") -> str:
    """The TOML [storage] body of the back-end ``request.param`` ("sqlite" or "redis").

    SQLite: a database under ``tmp_path/name``; Redis: the session's server, with a key prefix
    of this test's own; ``extra`` is appended for Redis (e.g. a shorter lease).
    """
    if request.param == "sqlite":
        return f'backend = "sqlite"\npath = "{tmp_path / name / "z.db"}"\n'
    server: RedisServer = request.getfixturevalue("redis_server")
    return f'backend = "redis"\nurl = "{server.url}"\nprefix = "{name}{next(_prefixes)}:"\n{extra}'
