"""One broker per store: a second `zanzara` on the same SQLite database is refused.

Two brokers on one store both used to start and diverge (a device drained its queue from one and
got the same messages again from the other).  These tests run real `zanzara` processes: the
second broker exits with a one-line error naming the store and the first broker's pid while the
first keeps serving; it starts once the first is stopped, and at once after a `kill -9` of the
first (the kernel releases a dead process's lock).
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest

from test_command import ZANZARA, free_port

from clients import V5, PahoClient


@pytest.fixture(params=["sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The [storage] section both brokers of a test share."""
    return f'backend = "sqlite"\npath = "{tmp_path / "data" / "z.db"}"\n'


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
        assert proc.stdout is not None and proc.stderr is not None
        if "listening" in proc.stdout.readline():
            self.proc = proc
            return None
        _, err = proc.communicate(timeout=30)
        assert proc.returncode != 0, err
        return err

    def start(self) -> None:
        err = self.try_start()
        assert err is None, err

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
    db = re.search(r'path = "(.*)"', storage)
    assert db is not None
    return f"database {db[1]} is in use by process {first.pid} (it holds {db[1]}.lock)"


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
    """At once: the kernel drops a dead process's flock."""
    first, second = Zanzara(tmp_path, "first", storage), Zanzara(tmp_path, "second", storage)
    first.start()
    try:
        assert expected_holder(storage, first) in refusal(second)
        first.kill()
        second.start()
        try:
            assert_serves(second, "after-kill")
        finally:
            second.stop()
    finally:
        first.stop()
