"""The `zanzara` command's lifecycle: SIGTERM/SIGINT shut it down gracefully, SIGHUP reloads.

A real process with SQLite in a data_dir, real clients (paho), the log read from its stderr.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from clients import V5, V311, PahoClient
from command import free_port, read_until_ready, start

QUEUED = 200


def _config(tmp_path: Path, port: int, extra: str = "") -> Path:
    cfg = tmp_path / "zanzara.toml"
    cfg.write_text(
        f'allow_anonymous = true\ndata_dir = "{tmp_path / "state"}"\nshutdown_grace = 3\n{extra}'
        f'[[listeners]]\nhost = "127.0.0.1"\nport = {port}\n',
        encoding="utf-8",
    )
    return cfg


def _read_until(proc: subprocess.Popen[str], text: str) -> str:
    """The log lines up to the first that holds ``text`` (pytest-timeout ends a wait that never ends)."""
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if text in line:
            return "".join(lines)
    raise AssertionError(f"the broker exited without logging {text!r}:\n{''.join(lines)}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_loses_no_queued_message_and_tells_v5_clients(
    tmp_path: Path, sig: signal.Signals
) -> None:
    port = free_port()
    cfg = _config(tmp_path, port)
    proc, log = start("-c", str(cfg), cwd=tmp_path)
    try:
        assert "ready (" in log, log
        device = PahoClient(port, "device-1", version=V311, clean=False)
        assert device.subscribe("alerts/#", 1) == [1]
        device.disconnect()
        publisher = PahoClient(port, "backend", version=V311)
        for i in range(QUEUED):
            publisher.publish("alerts/1", str(i).encode(), 1)  # returns once PUBACKed: committed
        publisher.disconnect()
        watcher = PahoClient(port, "watcher", version=V5)
        proc.send_signal(sig)
        reason, _ = watcher.expect_disconnect()
        # [MQTT-3.14.2-1] the server sends DISCONNECT with a reason code; 0x8B: Server shutting down.
        assert reason.value == 0x8B
        _, tail = proc.communicate(timeout=30)
        assert proc.returncode == 0, tail
        assert "Traceback" not in tail, tail
        assert "shutting down (shutdown_grace 3 s)" in tail
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # The same data_dir after a restart: every queued message is there, in order.
    proc, log = start("-c", str(cfg), cwd=tmp_path)
    try:
        assert (tmp_path / "state" / "zanzara.db").exists()
        device = PahoClient(port, "device-1", version=V311, clean=False)
        assert device.session_present
        got = [int(device.expect().payload) for _ in range(QUEUED)]
        assert got == list(range(QUEUED))
        device.disconnect()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_sighup_reloads_the_log_level_of_the_file(tmp_path: Path) -> None:
    port = free_port()
    cfg = _config(tmp_path, port, 'log_level = "info"\n')
    proc, _ = start("-c", str(cfg), cwd=tmp_path)
    try:
        proc.send_signal(signal.SIGHUP)
        _read_until(proc, "log level unchanged (info)")
        cfg.write_text(cfg.read_text(encoding="utf-8").replace('"info"', '"debug"'), encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        _read_until(proc, "log level info -> debug")
        cfg.write_text(cfg.read_text(encoding="utf-8").replace('"debug"', '"loud"'), encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        line = _read_until(proc, "configuration not reloaded").splitlines()[-1]
        assert "keeping log level debug" in line and "log_level" in line
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_sighup_keeps_a_level_given_by_a_flag(tmp_path: Path) -> None:
    port = free_port()
    cfg = _config(tmp_path, port, 'log_level = "warning"\n')
    proc, _ = start("-c", str(cfg), "--log-level", "info", cwd=tmp_path)
    try:
        proc.send_signal(signal.SIGHUP)
        _read_until(proc, "log level unchanged (info)")  # flags win over the file, as at start
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def test_sighup_says_when_there_is_nothing_to_reload(tmp_path: Path) -> None:
    proc, _ = start("--port", str(free_port()), "--ws-port", "0", cwd=tmp_path)
    try:
        proc.send_signal(signal.SIGHUP)
        line = _read_until(proc, "SIGHUP").splitlines()[-1]
        assert "nothing to reload" in line
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_json_log_format_from_the_command(tmp_path: Path) -> None:
    port, ws_port = free_port(), free_port()
    proc, log = start("--port", str(port), "--ws-port", str(ws_port), "--log-format", "json", cwd=tmp_path)
    proc.send_signal(signal.SIGTERM)
    out, tail = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert out == ""  # nothing on stdout: every line goes through logging
    entries = [json.loads(line) for line in (log + tail).splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in entries)
    listening = [entry["message"] for entry in entries if "listening" in entry["message"]]
    assert listening == [f"listening on mqtt://127.0.0.1:{port}", f"listening on ws://127.0.0.1:{ws_port}/"]


EMBEDDED = """
import asyncio, logging, sys
from zanzara import Broker, Config
from zanzara.config import StorageConfig

logging.basicConfig(level=logging.INFO)

async def main() -> None:
    broker = Broker(Config(storage=StorageConfig(backend="memory")), port=int(sys.argv[1]))
    await broker.serve_forever()
    print("returned", flush=True)

asyncio.run(main())
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_embedded_serve_forever_shuts_down_like_the_command(tmp_path: Path, sig: signal.Signals) -> None:
    port = free_port()
    script = tmp_path / "embedded.py"
    script.write_text(EMBEDDED, encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, str(script), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        ready, log = read_until_ready(proc)
        assert ready, log
        watcher = PahoClient(port, "watcher", version=V5)
        proc.send_signal(sig)  # Ctrl-C is SIGINT
        reason, _ = watcher.expect_disconnect()
        assert reason.value == 0x8B  # [MQTT-3.14.2-1] Server shutting down
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert out == "returned\n"


def test_embedded_sighup_says_when_there_is_nothing_to_reload(tmp_path: Path) -> None:
    port = free_port()
    script = tmp_path / "embedded.py"
    script.write_text(EMBEDDED, encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, str(script), str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        ready, log = read_until_ready(proc)
        assert ready, log
        proc.send_signal(signal.SIGHUP)
        assert "nothing to reload" in _read_until(proc, "reload").splitlines()[-1]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
