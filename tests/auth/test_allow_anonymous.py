"""allow_anonymous as in Mosquitto 2: on without a configuration file, off once a file declares listeners.

An embedded ``Config()`` keeps anonymous access on; a TOML document with ``[[listeners]]`` and no
``allow_anonymous`` key turns it off.  With it off and nothing that checks credentials, nobody gets
in (3.1.1 CONNACK return code 0x05, v5 0x87 Not authorized) and the broker says so at start.
"""

from __future__ import annotations

import signal
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from zanzara import ReasonCode
from zanzara.config import Config, ListenerConfig, StorageConfig, config_from_dict, load_config
from zanzara.hooks import ConnectRequest
from zanzara.mqtt.enums import ProtocolVersion
from zanzara.mqtt.packets import ConnAck

from brokerthread import BrokerThread
from clients import V5, V311, PahoClient, RawClient
from command import free_port, start
from peers import require

CLOSED = Config(storage=StorageConfig(backend="memory"), allow_anonymous=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "zanzara.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --- where the default comes from ---------------------------------------------------------------------


def test_embedded_config_allows_anonymous_by_default() -> None:
    assert Config().allow_anonymous is True
    assert Config(listeners=Config().listeners).allow_anonymous is True


def test_file_without_listeners_allows_anonymous(tmp_path: Path) -> None:
    # As Mosquitto 2 without listeners: the loopback listener, anonymous clients welcome.
    assert load_config(write(tmp_path, 'log_level = "warning"\n')).allow_anonymous is True


def test_file_with_listeners_refuses_anonymous_unless_it_says_so(tmp_path: Path) -> None:
    listeners = "[[listeners]]\nport = 1883\n"
    assert load_config(write(tmp_path, listeners)).allow_anonymous is False
    assert load_config(write(tmp_path, "allow_anonymous = true\n" + listeners)).allow_anonymous is True
    assert config_from_dict({"listeners": [{"port": 1883}]}).allow_anonymous is False


# --- what a client sees -----------------------------------------------------------------------------


@pytest.fixture
def closed() -> Iterator[BrokerThread]:
    with BrokerThread(CLOSED) as b:
        yield b


@pytest.mark.parametrize(
    ("version", "code"),
    [(ProtocolVersion.MQTT311, 0x05), (ProtocolVersion.MQTT5, ReasonCode.NOT_AUTHORIZED)],
    ids=["3.1.1", "5"],
)
@pytest.mark.parametrize("username", [None, "anyone"], ids=["anonymous", "unchecked-username"])
def test_connack_not_authorized_on_the_wire(
    closed: BrokerThread, version: ProtocolVersion, code: int, username: str | None
) -> None:
    raw = RawClient(closed.port, version)
    try:
        connack = raw.connect(username=username, password=b"pw" if username else None)
        # The wire byte: 3.1.1 Connect Return code 5 [MQTT-3.2.2.3], v5 reason code 0x87 [MQTT-3.2.2.2].
        assert isinstance(connack, ConnAck)
        assert connack.reason_code == code
        assert raw.expect_closed() == []
    finally:
        raw.close()


@pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5"])
def test_paho_is_refused(closed: BrokerThread, version: int) -> None:
    c = PahoClient(closed.port, version=version)
    assert c.reason_code == ReasonCode.NOT_AUTHORIZED  # paho maps 3.1.1 code 5 to 0x87


class Abstains:
    async def authenticate(self, request: ConnectRequest) -> None:
        return None


def test_a_hook_that_abstains_leaves_the_decision_to_allow_anonymous(make_broker) -> None:
    b = make_broker(CLOSED, setup=lambda broker: broker.add_authenticator(Abstains()))
    assert PahoClient(b.port, username="someone", password="pw").reason_code == ReasonCode.NOT_AUTHORIZED
    opened = make_broker(
        CLOSED.model_copy(update={"allow_anonymous": True}),
        setup=lambda broker: broker.add_authenticator(Abstains()),
    )
    c = PahoClient(opened.port)
    assert c.reason_code == 0
    c.disconnect()


def test_start_warns_when_nobody_can_connect(make_broker, caplog: pytest.LogCaptureFixture) -> None:
    make_broker(CLOSED)
    assert "nobody can connect" in caplog.text
    caplog.clear()
    make_broker(CLOSED, setup=lambda broker: broker.add_authenticator(Abstains()))
    assert "nobody can connect" not in caplog.text


def test_an_acl_file_alone_checks_no_credentials(
    make_broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic read public/#\n")
    b = make_broker(CLOSED.model_copy(update={"acl_file": str(acl)}))
    assert "nobody can connect" in caplog.text
    assert PahoClient(b.port, username="alice", password="pw").reason_code == ReasonCode.NOT_AUTHORIZED


def test_start_warns_about_anonymous_clients_beyond_loopback(
    make_broker, caplog: pytest.LogCaptureFixture
) -> None:
    make_broker(Config(storage=StorageConfig(backend="memory"), listeners=(ListenerConfig(port=0),)))
    assert "beyond this machine" not in caplog.text
    make_broker(Config(storage=StorageConfig(backend="memory"), listeners=(ListenerConfig(host="0.0.0.0"),)))
    assert "anonymous clients are allowed on 0.0.0.0:" in caplog.text


# --- the command with a configuration file ---------------------------------------------------------------


def test_command_with_listeners_in_its_file_refuses_anonymous_and_warns(tmp_path: Path) -> None:
    port = free_port()
    cfg = write(tmp_path, f'[[listeners]]\nport = {port}\n[storage]\nbackend = "memory"\n')
    proc, banner = start("-c", str(cfg), cwd=tmp_path)
    try:
        assert f":{port}" in banner
        out = subprocess.run(
            [require("mosquitto_pub"), "-p", str(port), "-t", "t", "-m", "m", "-V", "mqttv311"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert out.returncode != 0
        assert "not authorised" in out.stderr.lower(), out.stderr
        assert PahoClient(port, version=V5).reason_code == ReasonCode.NOT_AUTHORIZED
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    log = banner + err  # the warning comes at start, before "ready"
    assert "allow_anonymous is false and nothing checks credentials" in log
    assert "nobody can connect" in log


def test_command_without_a_file_allows_anonymous_and_does_not_warn(tmp_path: Path) -> None:
    port = free_port()
    proc, banner = start("--port", str(port), "--ws-port", "0", cwd=tmp_path)
    try:
        assert f":{port}" in banner
        c = PahoClient(port, version=V311)
        assert c.reason_code == 0
        c.disconnect()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "WARNING" not in banner + err, banner + err
