"""The `zanzara` command as users run it: a real process, uvloop, signals, mosquitto clients."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from clients import V5, PahoClient
from command import ZANZARA, free_port, start
from peers import require


def test_command_serves_and_shuts_down_gracefully(tmp_path):
    port, ws_port = free_port(), free_port()
    # --ws-port: never the default 8083 in tests, where brokers run side by side.
    proc, log = start(
        "--host", "127.0.0.1", "--port", str(port), "--ws-port", str(ws_port), "-v", cwd=tmp_path
    )
    try:
        announced = [line.split()[-1] for line in log.splitlines() if "listening on" in line]
        # Each listener once, through logging (nothing on stdout).
        assert announced == [f"mqtt://127.0.0.1:{port}", f"ws://127.0.0.1:{ws_port}/"], log
        assert "(uvloop event loop)" in log  # the fast loop is the default on Linux
        sub = subprocess.Popen(
            [require("mosquitto_sub"), "-p", str(port), "-t", "cmd/#", "-C", "2", "-q", "1", "-V", "mqttv5"],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.5)
        for i in range(2):
            subprocess.run(
                [require("mosquitto_pub"), "-p", str(port), "-t", f"cmd/{i}", "-m", f"m{i}", "-q", "1"],
                check=True,
                timeout=10,
            )
        out, _ = sub.communicate(timeout=10)
        assert out.split() == ["m0", "m1"]
        c = PahoClient(port, version=V5)
        proc.send_signal(signal.SIGTERM)
        rc, _ = c.expect_disconnect()
        assert rc.value == 0x8B  # server shutting down
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert out == ""
    finally:
        proc.kill()
        proc.wait()


def test_command_config_file(tmp_path):
    port = free_port()
    cfg = tmp_path / "zanzara.toml"
    cfg.write_text(
        "allow_anonymous = true\n"  # a file with listeners refuses anonymous clients unless told
        f'[[listeners]]\nhost = "127.0.0.1"\nport = {port}\n\n[mqtt]\nmax_keepalive = 30\n'
    )
    proc, log = start("-c", str(cfg), cwd=tmp_path)
    try:
        assert f":{port}" in log
        c = PahoClient(port, version=V5, keepalive=600)
        assert c.connack[2].ServerKeepAlive == 30
        c.disconnect()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0


def test_command_refuses_bad_config(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[mqtt]\nmax_keepalive = 70000\n")
    out = subprocess.run(
        [str(ZANZARA), "-c", str(cfg)], capture_output=True, text=True, timeout=30, env={**os.environ}
    )
    assert out.returncode == 2
    assert "config error: mqtt.max_keepalive" in out.stderr
