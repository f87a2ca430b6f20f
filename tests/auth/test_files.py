"""password_file and acl_file in a running broker, with files made by mosquitto_passwd and real clients.

Mosquitto semantics (mosquitto.conf): a client that sends a username is checked against the password
file; ACL rules decide publish (v5 PUBACK 0x87), subscribe (SUBACK 0x87 / 3.1.1 0x80) and which
messages a client receives; SIGHUP re-reads both files without dropping connections.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from zanzara.config import Config, StorageConfig
from zanzara.mqtt.enums import ReasonCode
from zanzara.mqtt.packets import PubAck, Publish

from brokerthread import BrokerThread
from clients import V5, V311, PahoClient, RawClient
from command import ZANZARA, free_port, start
from peers import require

ACL = """\
# anonymous clients: nothing but the public topic
topic read public/#

user alice
topic readwrite news/#
topic read a/#
topic deny a/secret

pattern readwrite devices/%c/#
pattern read users/%u/inbox
"""


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    passwords = tmp_path / "passwords"
    mosquitto_passwd = require("mosquitto_passwd")
    subprocess.run([mosquitto_passwd, "-c", "-b", str(passwords), "alice", "wonderland"], check=True)
    subprocess.run([mosquitto_passwd, "-b", str(passwords), "bob", "builder"], check=True)
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    return passwords, acl


@pytest.fixture
def secured(files: tuple[Path, Path]):
    passwords, acl = files
    cfg = Config(
        storage=StorageConfig(backend="memory"),
        allow_anonymous=False,
        password_file=str(passwords),
        acl_file=str(acl),
    )
    with BrokerThread(cfg) as b:
        yield b


@pytest.mark.parametrize("version", [V5, V311])
def test_passwords_from_mosquitto_passwd(secured, version):
    ok = PahoClient(secured.port, version=version, username="alice", password="wonderland")
    assert ok.reason_code == 0
    ok.disconnect()
    for user, password in (("alice", "wrong"), ("mallory", "x")):
        bad = PahoClient(secured.port, version=version, username=user, password=password)
        # v5 0x86 bad user name or password; 3.1.1 return code 4 (paho maps it to 0x86 too)
        assert bad.reason_code == 0x86, (user, bad.reason_code)
    anonymous = PahoClient(secured.port, version=version)
    assert anonymous.reason_code == 0x87  # not authorized (3.1.1 return code 5)


def test_acl_publish_subscribe_and_patterns(secured):
    alice = PahoClient(secured.port, "dev1", version=V5, username="alice", password="wonderland")
    assert alice.subscribe("news/#", 1) == [1]
    assert alice.subscribe("devices/dev1/#", 1) == [1]
    assert alice.subscribe("users/alice/inbox", 1) == [1]
    assert alice.subscribe("secret/#", 1) == [ReasonCode.NOT_AUTHORIZED]
    assert alice.subscribe("devices/dev2/#", 1) == [ReasonCode.NOT_AUTHORIZED]  # %c is dev1
    assert alice.subscribe("users/bob/inbox", 1) == [ReasonCode.NOT_AUTHORIZED]  # %u is alice

    raw = RawClient(secured.port)
    raw.connect("dev1b", username="alice", password=b"wonderland")
    raw.send(Publish(topic="news/today", payload=b"ok", qos=1, packet_id=1))
    ack = raw.recv()
    assert isinstance(ack, PubAck) and (ack.packet_id, ack.reason_code) == (1, ReasonCode.SUCCESS)
    raw.send(Publish(topic="devices/other/x", payload=b"no", qos=1, packet_id=2))
    ack = raw.recv()
    assert isinstance(ack, PubAck) and ack.reason_code == ReasonCode.NOT_AUTHORIZED
    assert alice.expect().payload == b"ok"
    alice.expect_none(0.3)

    v311 = PahoClient(secured.port, "dev3", version=V311, username="bob", password="builder")
    assert v311.subscribe("news/#", 1) == [0x80]  # 3.1.1 failure code
    assert v311.subscribe("devices/dev3/in", 1) == [1]


def test_a_denied_topic_is_not_delivered_under_an_allowed_filter(secured):
    """`deny a/secret` under `read a/#`: the subscription stands, that topic's messages are withheld."""
    alice = PahoClient(secured.port, "reader", version=V5, username="alice", password="wonderland")
    assert alice.subscribe("a/#", 1) == [1]
    # Published from the server side: the ACL decides delivery only.
    secured.run(secured.broker.publish("a/secret", b"hidden", qos=1))
    secured.run(secured.broker.publish("a/open", b"shown", qos=1))
    msg = alice.expect()
    assert (msg.topic, msg.payload) == ("a/open", b"shown")
    alice.expect_none(0.3)


def test_sighup_reloads_the_files_without_dropping_clients(tmp_path, files):
    passwords, acl = files
    port = free_port()
    cfg = tmp_path / "zanzara.toml"
    cfg.write_text(
        f'allow_anonymous = false\npassword_file = "{passwords}"\nacl_file = "{acl}"\n\n'
        f'[[listeners]]\nhost = "127.0.0.1"\nport = {port}\n\n[storage]\nbackend = "memory"\n'
    )
    proc, banner = start("-c", str(cfg), cwd=tmp_path)
    try:
        assert f":{port}" in banner
        alice = PahoClient(port, "dev9", version=V5, username="alice", password="wonderland")
        assert PahoClient(port, version=V5, username="carol", password="c4rol").reason_code == 0x86
        out = subprocess.run(
            [str(ZANZARA), "passwd", "-b", str(passwords), "carol", "c4rol"], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        acl.write_text(ACL + "\nuser carol\ntopic read news/#\n")
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while True:
            carol = PahoClient(port, version=V5, username="carol", password="c4rol")
            if carol.reason_code == 0:
                break
            assert time.monotonic() < deadline, "carol was never accepted after SIGHUP"
            time.sleep(0.2)
        assert carol.subscribe("news/#", 1) == [1]
        # alice stayed connected through the reload
        alice.publish("news/x", b"still here", 1)
        assert carol.expect().payload == b"still here"
        # a broken file is reported and the rules in force stay
        acl.write_text("bogus line\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert PahoClient(port, version=V5, username="carol", password="c4rol").reason_code == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert "reload failed, keeping the previous rules" in err
    assert "unknown keyword 'bogus'" in err


def test_a_bad_acl_file_stops_the_start_naming_the_line(tmp_path):
    acl = tmp_path / "acl"
    acl.write_text("topic read ok/#\ntopik read typo\n")
    cfg = tmp_path / "zanzara.toml"
    cfg.write_text(f'acl_file = "{acl}"\n[[listeners]]\nhost = "127.0.0.1"\nport = {free_port()}\n')
    out = subprocess.run([str(ZANZARA), "-c", str(cfg)], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert f"{acl}:2" in out.stderr and "topik" in out.stderr
