"""What the core logs, so that a device that "gets nothing" can be debugged.

At INFO: each connect (client id, address, listener, protocol version, clean start,
session expiry, session present), each disconnect with its reason, and at start what
the store gave back.  At DEBUG: each subscribe and unsubscribe with filter and QoS (as
Mosquitto logs them only with its debug types).  Payloads and passwords never above
DEBUG.  The records carry ``client_id`` and ``event`` for the JSON log format.
"""

from __future__ import annotations

import logging

import pytest

from zanzara.backends.memory import MemoryStore
from zanzara.core import Core
from zanzara.message import Message
from zanzara.mqtt.packets import Unsubscribe
from zanzara.storage import QueueRecord, SessionRecord, Snapshot

from .conftest import V311, CoreFactory, connect, disconnect, drop, publish, receive, subscribe

CORE = "zanzara.core"


def records(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == event]


def test_connect_at_info(core: Core, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, CORE)
    connect(core, "dev-1", clean_start=False, session_expiry_interval=60)
    [record] = records(caplog, "connected")
    assert record.levelno == logging.INFO
    assert record.client_id == "dev-1"  # type: ignore[attr-defined]
    assert record.getMessage() == (
        "dev-1 connected from 192.0.2.1:50000 on test: MQTT 5.0, clean start no, "
        "session expiry 60 s, session present no"
    )


def test_connect_3_1_1_persistent_session(core: Core, caplog: pytest.LogCaptureFixture) -> None:
    drop(core, connect(core, "dev-2", version=V311, clean_start=False))
    caplog.set_level(logging.INFO, CORE)
    connect(core, "dev-2", version=V311, clean_start=False)
    [record] = records(caplog, "connected")
    assert "MQTT 3.1.1, clean start no, session expiry never, session present yes" in record.getMessage()


@pytest.mark.parametrize(
    ("how", "reason", "text"),
    [
        ("disconnect", "disconnect", "dev-3 disconnected: sent DISCONNECT, session ended"),
        ("drop", "connection_lost", "dev-3 disconnected: connection lost, session ended"),
        (
            "takeover",
            "takeover",
            "dev-3 disconnected: taken over by a new connection with its client id, session ended",
        ),
    ],
)
def test_disconnect_at_info_with_its_reason(
    core: Core, caplog: pytest.LogCaptureFixture, how: str, reason: str, text: str
) -> None:
    client = connect(core, "dev-3")
    caplog.set_level(logging.INFO, CORE)
    if how == "disconnect":
        disconnect(core, client)
    elif how == "drop":
        drop(core, client)
    else:
        connect(core, "dev-3", clean_start=False)
    [record] = records(caplog, "disconnected")
    assert record.levelno == logging.INFO
    assert record.client_id == "dev-3"  # type: ignore[attr-defined]
    assert record.reason == reason  # type: ignore[attr-defined]
    assert record.getMessage() == text


def test_subscribe_and_unsubscribe_only_at_debug(core: Core, caplog: pytest.LogCaptureFixture) -> None:
    client = connect(core, "dev-4")
    caplog.set_level(logging.INFO, CORE)
    subscribe(core, client, "a/+", qos=1)
    assert records(caplog, "subscribed") == []
    caplog.set_level(logging.DEBUG, CORE)
    subscribe(core, client, "b/#", "$share/g/c", qos=2, packet_id=2)
    receive(core, client, Unsubscribe(packet_id=3, topic_filters=("b/#", "nope")))
    assert [r.getMessage() for r in records(caplog, "subscribed")] == [
        "dev-4 subscribed to b/# at QoS 2: granted QoS 2",
        "dev-4 subscribed to $share/g/c at QoS 2: granted QoS 2",
    ]
    assert [r.getMessage() for r in records(caplog, "unsubscribed")] == [
        "dev-4 unsubscribed from b/#",
        "dev-4 unsubscribed from nope (no such subscription)",
    ]


def test_refused_subscription_is_logged_with_its_code(
    make_core: CoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    core = make_core(shared_subscriptions=False)
    client = connect(core, "dev-5")
    caplog.set_level(logging.DEBUG, CORE)
    subscribe(core, client, "$share/g/c", qos=1)
    [record] = records(caplog, "subscribed")
    assert record.getMessage() == "dev-5 subscribed to $share/g/c at QoS 1: refused (0x9e)"


def test_no_payload_or_password_above_debug(core: Core, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, CORE)
    sub = connect(core, "s")
    subscribe(core, sub, "#")
    pub = connect(core, "p", username="u", password=b"hunter2-secret")
    publish(core, pub, "t", b"payload-secret", qos=1)
    publish(core, pub, "$SYS/x", b"payload-secret", qos=1)  # refused: logged at debug
    disconnect(core, pub)
    loud = [r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG]
    assert loud, "connects and disconnects are logged at INFO"
    assert not [m for m in loud if "secret" in m]


def test_what_was_restored_at_info(core: Core, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, CORE)
    kept = Message(topic="t", payload=b"x", qos=1, message_id="m1")
    snapshot = Snapshot(
        sessions=[SessionRecord(client_id="a", expiry_interval=3600, disconnected_at=core.state.clock())],
        queues={"a": [QueueRecord(message=kept, qos=1, retain=False)] * 2},
        retained=[Message(topic="r", payload=b"y", retain=True)],
    )
    core.attach_store(MemoryStore(), snapshot)
    [record] = records(caplog, "restored")
    assert record.getMessage() == (
        "restored 1 sessions, 2 messages queued or in flight, 1 retained messages from the memory store"
    )
