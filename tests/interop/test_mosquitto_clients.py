"""The broker with Mosquitto's own command-line clients, mosquitto_pub and mosquitto_sub."""

from __future__ import annotations

import subprocess

import pytest

from clients import V5, PahoClient
from peers import require


def sub_proc(port: int, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [require("mosquitto_sub"), "-h", "127.0.0.1", "-p", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def pub(port: int, *args: str) -> None:
    subprocess.run(
        [require("mosquitto_pub"), "-h", "127.0.0.1", "-p", str(port), *args],
        check=True,
        timeout=10,
        capture_output=True,
    )


def wait_subscribed(broker, client_id: str) -> None:
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if broker.call(
            lambda: bool(
                broker.core.sessions.get(client_id) and broker.core.sessions[client_id].subscriptions
            )
        ):
            return
        time.sleep(0.02)
    raise AssertionError(f"{client_id} never subscribed")


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5", "mqttv31"])
@pytest.mark.parametrize("qos", ["0", "1", "2"])
def test_pub_sub(broker, version, qos):
    sub = sub_proc(broker.port, "-V", version, "-t", "cli/#", "-q", qos, "-C", "3", "-v", "-i", "cli-sub")
    wait_subscribed(broker, "cli-sub")
    for i in range(3):
        pub(broker.port, "-V", version, "-t", f"cli/{i}", "-m", f"hello {i}", "-q", qos)
    out, err = sub.communicate(timeout=10)
    assert sub.returncode == 0, err
    assert out.decode().splitlines() == [f"cli/{i} hello {i}" for i in range(3)]


def test_retained_with_mosquitto_clients(broker):
    pub(broker.port, "-t", "cli/ret", "-m", "kept", "-r", "-q", "1")
    out = subprocess.run(
        [
            require("mosquitto_sub"),
            "-h",
            "127.0.0.1",
            "-p",
            str(broker.port),
            "-t",
            "cli/ret",
            "-C",
            "1",
            "-v",
            "-W",
            "5",
        ],
        capture_output=True,
        timeout=10,
    )
    assert out.stdout.decode().strip() == "cli/ret kept"


def test_v5_user_properties_with_mosquitto_clients(broker):
    sub = sub_proc(broker.port, "-V", "mqttv5", "-t", "cli/props", "-C", "1", "-F", "%t %p %P", "-i", "cli-p")
    wait_subscribed(broker, "cli-p")
    pub(
        broker.port,
        "-V",
        "mqttv5",
        "-t",
        "cli/props",
        "-m",
        "body",
        "-D",
        "publish",
        "user-property",
        "k",
        "v",
    )
    out, _ = sub.communicate(timeout=10)
    assert out.decode().strip() == "cli/props body k:v"


def test_persistent_session_with_mosquitto_sub(broker):
    """mosquitto_sub -c (clean session off) gets what was published while it was away."""
    first = sub_proc(broker.port, "-t", "cli/off", "-q", "1", "-c", "-i", "cli-persist", "-C", "1")
    wait_subscribed(broker, "cli-persist")
    pub(broker.port, "-t", "cli/off", "-m", "first", "-q", "1")
    out, _ = first.communicate(timeout=10)
    assert out.decode().strip() == "first"
    pub(broker.port, "-t", "cli/off", "-m", "while away", "-q", "1")
    again = subprocess.run(
        [
            require("mosquitto_sub"),
            "-h",
            "127.0.0.1",
            "-p",
            str(broker.port),
            "-t",
            "cli/off",
            "-q",
            "1",
            "-c",
            "-i",
            "cli-persist",
            "-C",
            "1",
            "-W",
            "5",
        ],
        capture_output=True,
        timeout=10,
    )
    assert again.stdout.decode().strip() == "while away"


def test_paho_and_mosquitto_clients_together(broker):
    c = PahoClient(broker.port, version=V5)
    c.subscribe("mix/#", 2)
    pub(broker.port, "-V", "mqttv311", "-t", "mix/a", "-m", "from cli", "-q", "2")
    msg = c.expect()
    assert (msg.topic, msg.payload, msg.qos) == ("mix/a", b"from cli", 2)
