"""One broker per store: a second `zanzara` on the same SQLite database or Redis key prefix is refused.

Two brokers on one store both used to start and diverge (a device drained its queue from one and
got the same messages again from the other).  These tests run real `zanzara` processes, and a
real redis-server for the Redis store: the second broker exits with a one-line error naming the
store and the first broker's pid while the first keeps serving; it starts once the first is
stopped, and after a `kill -9` of the first (at once with SQLite, whose lock the kernel releases
with the process; within the lease with Redis, whose lease the dead broker no longer renews).
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from clients import V5, PahoClient
from command import ZANZARA, free_port, read_until_ready
from redisserver import storage_section

LEASE = 5.0  # the default storage.lease, which these tests keep


@pytest.fixture(params=["sqlite", "redis"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The [storage] section both brokers of a test share (Redis: a prefix of the test's own)."""
    return storage_section(request, tmp_path, "own")


class Zanzara:
    """A `zanzara` command on a port of its own with the given [storage] section."""

    def __init__(self, tmp: Path, name: str, storage: str) -> None:
        self.port = free_port()
        self.cfg = tmp / f"{name}.toml"
        self.cfg.write_text(
            f'allow_anonymous = true\n[[listeners]]\nhost = "127.0.0.1"\nport = {self.port}\n\n'
            f"[storage]\n{storage}"
        )
        self.proc: subprocess.Popen[str] | None = None

    def try_start(self) -> str | None:
        """Start it: None once it listens, else what it wrote on stderr before it exited."""
        proc = subprocess.Popen(
            [str(ZANZARA), "-c", str(self.cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        ready, log = read_until_ready(proc)
        if ready:
            self.proc = proc
            return None
        err = log + proc.communicate(timeout=30)[1]
        assert proc.returncode != 0, err
        return err

    def start(self) -> None:
        err = self.try_start()
        assert err is None, err

    def start_within(self, seconds: float) -> float:
        """Start it, trying again while the store is held, for at most ``seconds``; returns how long."""
        started = time.monotonic()
        while (err := self.try_start()) is not None:
            assert "is in use by" in err, err
            assert time.monotonic() - started < seconds, f"still refused after {seconds} s:\n{err}"
            time.sleep(0.1)  # a pause between polls: each try is a whole process start
        return time.monotonic() - started

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                assert self.proc.wait(10) == 0
            finally:
                self.proc.kill()
                self.proc.wait()


def refusal(broker: Zanzara) -> str:
    """Start ``broker``, which must exit non-zero with exactly one error line (no traceback)."""
    out = subprocess.run([str(ZANZARA), "-c", str(broker.cfg)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    errors = [line for line in out.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, out.stderr
    assert "cannot open the store: " in errors[0]
    return errors[0]


def expected_holder(storage: str, first: Zanzara) -> str:
    if 'backend = "sqlite"' in storage:
        db = re.search(r'path = "(.*)"', storage)
        assert db is not None
        return f"database {db[1]} is in use by process {first.pid} (it holds {db[1]}.lock)"
    prefix = re.search(r'prefix = "(.*)"', storage)
    assert prefix is not None
    holder = f"pid {first.pid} on host {socket.gethostname()}"
    return f"redis key prefix '{prefix[1]}' is in use by another broker ({holder})"


def assert_serves(broker: Zanzara, tag: str) -> None:
    """A paho subscriber gets what a paho publisher sends through ``broker``."""
    sub = PahoClient(broker.port, version=V5)
    assert sub.subscribe(f"own/{tag}", 1) == [1]
    pub = PahoClient(broker.port, version=V5)
    pub.publish(f"own/{tag}", tag.encode(), qos=1)
    assert sub.expect().payload == tag.encode()
    pub.disconnect()
    sub.disconnect()


def test_a_second_broker_on_the_same_store_is_refused_while_the_first_serves(tmp_path, storage):
    first, second = Zanzara(tmp_path, "first", storage), Zanzara(tmp_path, "second", storage)
    first.start()
    try:
        device = PahoClient(first.port, "own-device", version=V5, clean=False, session_expiry=3600)
        assert device.subscribe("own/device", 1) == [1]
        device.disconnect()

        error = refusal(second)
        assert expected_holder(storage, first) in error
        if "redis" in storage:
            assert re.search(r"its lease '[^']*lease' expires in \d+\.\d s", error), error

        assert_serves(first, "after-the-refusal")
        PahoClient(first.port, version=V5).publish("own/device", b"queued by the first", qos=1)
        first.stop()

        second.start()  # the first is gone: its store is free, and everything in it is there
        try:
            back = PahoClient(second.port, "own-device", version=V5, clean=False, session_expiry=3600)
            assert back.session_present
            assert back.expect().payload == b"queued by the first"
            back.disconnect()
            assert_serves(second, "second")
        finally:
            second.stop()
    finally:
        first.stop()


def test_the_store_is_free_again_after_a_kill_9(tmp_path, storage):
    """SQLite: at once (the kernel drops a dead process's flock).  Redis: within the lease."""
    first, second = Zanzara(tmp_path, "first", storage), Zanzara(tmp_path, "second", storage)
    first.start()
    try:
        assert expected_holder(storage, first) in refusal(second)
        first.kill()
        if "sqlite" in storage:
            second.start()
        else:
            waited = second.start_within(LEASE + 10)  # the lease, and some process starts
            print(f"redis: the second broker started {waited:.1f} s after the first was killed")
        try:
            assert_serves(second, "after-kill")
        finally:
            second.stop()
    finally:
        first.stop()


def test_another_redis_prefix_on_the_same_server_starts(tmp_path, redis_server):
    url = redis_server.url
    first = Zanzara(tmp_path, "first", f'backend = "redis"\nurl = "{url}"\nprefix = "own-a:"\n')
    other = Zanzara(tmp_path, "other", f'backend = "redis"\nurl = "{url}"\nprefix = "own-b:"\n')
    first.start()
    try:
        other.start()
        try:
            assert_serves(first, "first")
            assert_serves(other, "other")
        finally:
            other.stop()
    finally:
        first.stop()
