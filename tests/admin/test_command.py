"""The `zanzara` command serves the admin API in its own loop, and stops it with the broker."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from clients import V5, PahoClient
from command import free_port, start


def test_the_command_serves_the_admin_api_and_metrics() -> None:
    port, admin = free_port(), free_port()
    proc, log = start("--port", str(port), "--ws-port", "0", "--admin-port", str(admin))
    # The rest of the log is read so that the broker never blocks on a full pipe.
    assert proc.stderr is not None
    drain = threading.Thread(target=proc.stderr.read, daemon=True)
    drain.start()
    try:
        assert f"admin API on http://127.0.0.1:{admin}" in log
        http = httpx.Client(base_url=f"http://127.0.0.1:{admin}", timeout=10)
        assert http.get("/readyz").json() == {"status": "ready"}
        dev = PahoClient(port, "cmd-dev", version=V5)
        dev.subscribe("cmd/#", qos=1)
        result = http.post("/api/v1/publish", json={"topic": "cmd/1", "payload": "hi"}).json()
        assert result["sent"] == 1
        assert dev.expect().payload == b"hi"
        families = {f.name: f for f in text_string_to_metric_families(http.get("/metrics").text)}
        connections = families["zanzara_connections"].samples[0].value
        assert connections == 1
        dev.disconnect()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_the_api_reloads_the_log_level_as_sighup_does(tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    config = tmp_path / "zanzara.toml"
    config.write_text('log_level = "info"\n[storage]\nbackend = "memory"\n', encoding="utf-8")
    listener = f"[[listeners]]\nport = {port}\n"
    config.write_text(config.read_text(encoding="utf-8") + listener, encoding="utf-8")
    proc, _ = start("-c", str(config), "--admin-port", str(admin))
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{admin}", timeout=10)
        assert http.post("/api/v1/reload").json() == {"reloaded": ["log_level"], "failed": []}
        config.write_text(config.read_text(encoding="utf-8").replace('"info"', '"debug"'), encoding="utf-8")
        assert http.post("/api/v1/reload").json() == {"reloaded": ["log_level"], "failed": []}
        config.write_text("log_level = 3\n", encoding="utf-8")
        assert http.post("/api/v1/reload").json() == {"reloaded": [], "failed": ["log_level"]}
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert "log level unchanged (info)" in err
    assert "log level info -> debug" in err
    assert "configuration not reloaded, keeping log level debug" in err
