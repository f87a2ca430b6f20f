"""The README's examples as a new user pastes them: they run, and do what the text says."""

from __future__ import annotations

import dataclasses
import re
import signal
import subprocess
import sys
import typing
import urllib.request
from pathlib import Path

import pytest

from zanzara import events
from zanzara.mqtt.enums import ReasonCode

from clients import V5, PahoClient
from command import free_port, read_until_ready, start

README = Path(__file__).resolve().parents[2] / "README.md"


def code_blocks(language: str) -> list[str]:
    return re.findall(
        rf"^```{language}\n(.*?)^```", README.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL
    )


def the_block(language: str, holding: str) -> str:
    [block] = [block for block in code_blocks(language) if holding in block]
    return block


def run_example(tmp_path: Path, source: str, port: int) -> subprocess.Popen[str]:
    """Run a Python example on ``port`` (instead of 1883), logging at INFO; returns it once ready."""
    assert "port=1883" in source
    script = tmp_path / "example.py"
    script.write_text(
        "import logging\nlogging.basicConfig(level=logging.INFO)\n"
        + source.replace("port=1883", f"port={port}"),
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    ready, log = read_until_ready(proc)
    assert ready, log
    return proc


def stop_example(proc: subprocess.Popen[str], sig: signal.Signals) -> str:
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    return err


def test_embedded_example_serves_until_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    proc = run_example(tmp_path, the_block("python", "class Passwords:"), port)
    try:
        device = PahoClient(port, "device-42", version=V5, username="device", password="s3cret")
        assert device.reason_code == 0
        assert PahoClient(port, version=V5, username="device", password="nope").reason_code == 0x86
        watcher = PahoClient(port, "watcher", version=V5, username="device", password="s3cret")
    finally:
        err = stop_example(proc, signal.SIGINT)
    reason, _ = watcher.expect_disconnect()
    assert reason.value == 0x8B  # [MQTT-3.14.2-1] DISCONNECT with Server shutting down
    assert "KeyboardInterrupt" not in err
    assert (tmp_path / "data" / "zanzara.db").is_file()  # ./data/ where the program runs, as it says


def test_scram_example_refuses_anonymous_clients(tmp_path: Path) -> None:
    port = free_port()
    proc = run_example(tmp_path, the_block("python", "ScramSha256.from_passwords"), port)
    try:
        # Without an Authentication Method nothing is checked: allow_anonymous=False refuses it.
        assert PahoClient(port, version=V5).reason_code == ReasonCode.NOT_AUTHORIZED
    finally:
        stop_example(proc, signal.SIGTERM)


def test_static_dir_snippet_works_when_pasted(tmp_path: Path) -> None:
    mqtt_port, ws_port = free_port(), free_port()
    snippet = the_block("toml", "static_dir")
    cfg = tmp_path / "zanzara.toml"
    cfg.write_text(
        snippet.replace("port = 1883", f"port = {mqtt_port}").replace("port = 8083", f"port = {ws_port}")
        + '[storage]\nbackend = "memory"\n',
        encoding="utf-8",
    )
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("<h1>app</h1>", encoding="utf-8")
    proc, log = start("-c", str(cfg), cwd=tmp_path)
    try:
        assert "ready (" in log, log
        assert PahoClient(mqtt_port, version=V5).reason_code == 0  # TCP, anonymous
        with urllib.request.urlopen(f"http://127.0.0.1:{ws_port}/", timeout=10) as page:
            assert page.read() == b"<h1>app</h1>"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def documented_events() -> dict[str, set[str]]:
    text = README.read_text(encoding="utf-8")
    table = text.split("\n| event | fields | when |\n", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| ((?:`\w+`(?:, )?)+) \|", table, re.MULTILINE)
    return {name: set(re.findall(r"`(\w+)`", fields)) for name, fields in rows}


@pytest.mark.parametrize("event", typing.get_args(events.Event), ids=lambda event: event.name)
def test_readme_documents_each_event_and_its_fields(event: type) -> None:
    documented = documented_events()
    assert event.name in documented, f"README.md does not list the event {event.name}"
    assert documented[event.name] == {field.name for field in dataclasses.fields(event)}


def test_readme_documents_no_event_that_does_not_exist() -> None:
    names = {event.name for event in typing.get_args(events.Event)}
    assert set(documented_events()) <= names
