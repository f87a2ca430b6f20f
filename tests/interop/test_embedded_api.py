"""The embedded API: async with Broker(...), server-side publish, hooks and events."""

from __future__ import annotations

import asyncio
import gc

import paho.mqtt.client as paho
import pytest

import zanzara
from zanzara import Broker, ReasonCode
from zanzara.config import Config, StorageConfig
from zanzara.mqtt.enums import ProtocolVersion
from zanzara.mqtt.packets import ConnAck, Connect
from zanzara.server import GC_THRESHOLD, tune_gc

from clients import V5, V311, PahoClient, RawClient

MEMORY = Config(storage=StorageConfig(backend="memory"))


async def in_thread(fn, *args):
    return await asyncio.to_thread(fn, *args)


async def test_async_with_broker_and_server_publish():
    async with Broker(MEMORY, port=0) as broker:
        port = broker.addresses[0][1]
        sub = await in_thread(PahoClient, port)
        await in_thread(sub.subscribe, "news/#", 1)
        matched = await broker.publish("news/today", "hello", qos=1, user_properties=[("src", "server")])
        assert matched.matched == 1 and matched.message_id is not None
        msg = await in_thread(sub.expect)
        assert (msg.topic, msg.payload, msg.qos) == ("news/today", b"hello", 1)
        assert msg.properties.UserProperty == [("src", "server")]
        await in_thread(sub.disconnect)


class PasswordCheck:
    async def authenticate(self, request: zanzara.ConnectRequest) -> ReasonCode | None:
        if request.client.username == "alice":
            return (
                ReasonCode.SUCCESS if request.password == b"secret" else ReasonCode.BAD_USER_NAME_OR_PASSWORD
            )
        return None  # let the next hook decide


class DenyAll:
    async def authenticate(self, request: zanzara.ConnectRequest) -> ReasonCode | None:
        return ReasonCode.NOT_AUTHORIZED


async def test_authenticate_hook_chain():
    async with Broker(MEMORY, port=0, authenticators=[PasswordCheck(), DenyAll()]) as broker:
        port = broker.addresses[0][1]
        ok = await in_thread(lambda: PahoClient(port, username="alice", password="secret"))
        assert ok.reason_code == 0
        bad = await in_thread(lambda: PahoClient(port, username="alice", password="wrong"))
        assert bad.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD
        raw = await in_thread(RawClient, port, ProtocolVersion.MQTT311)
        await in_thread(raw.send, Connect(client_id="v3", username="alice", password=b"wrong"))
        assert await in_thread(raw.recv) == ConnAck(reason_code=4)  # 3.1.1: bad user name or password
        anon = await in_thread(lambda: PahoClient(port))
        assert anon.reason_code == ReasonCode.NOT_AUTHORIZED  # fell through to DenyAll
        await in_thread(ok.disconnect)


class TopicRules:
    async def authorize_publish(self, client, topic, qos, retain):
        return ReasonCode.NOT_AUTHORIZED if topic.startswith("secret/") else None

    async def authorize_subscribe(self, client, subscription):
        if subscription.topic_filter.startswith("secret/"):
            return ReasonCode.UNSPECIFIED_ERROR  # 0x80
        if subscription.topic_filter == "capped":
            return ReasonCode.GRANTED_QOS_0
        return None


async def test_authorize_hooks():
    async with Broker(MEMORY, port=0, authorizers=[TopicRules()]) as broker:
        port = broker.addresses[0][1]
        c = await in_thread(lambda: PahoClient(port, version=V5))
        assert await in_thread(lambda: c.subscribe([("secret/x", 1), ("open/x", 1), ("capped", 2)])) == [
            0x80,
            1,
            0,
        ]
        v3 = await in_thread(lambda: PahoClient(port, version=V311))
        assert await in_thread(lambda: v3.subscribe("secret/y", 1)) == [0x80]
        info = await in_thread(lambda: c.publish("secret/x", b"no", 1))
        assert info.rc == paho.MQTT_ERR_SUCCESS
        await in_thread(lambda: c.publish("open/x", b"yes", 1))
        msg = await in_thread(c.expect)
        assert msg.payload == b"yes"
        await in_thread(c.expect_none)


async def test_events_fire():
    seen: list[str] = []
    got = asyncio.Event()

    async with Broker(MEMORY, port=0) as broker:

        @broker.on()
        async def record(event: zanzara.Event) -> None:
            seen.append(event.name)
            if event.name == "client_disconnected":
                got.set()

        port = broker.addresses[0][1]
        c = await in_thread(lambda: PahoClient(port, version=V5))
        await in_thread(lambda: c.subscribe("ev", 1))
        await in_thread(lambda: c.publish("ev", b"x", 1))
        await in_thread(c.expect)
        await in_thread(lambda: c.unsubscribe("ev"))
        await in_thread(c.disconnect)
        await asyncio.wait_for(got.wait(), 5)
    assert seen[0] == "client_connected"
    for name in ("subscribed", "published", "delivered", "unsubscribed", "client_disconnected"):
        assert name in seen, name


@pytest.mark.parametrize("bad", ["a/+", "", "x/#"])
async def test_server_publish_rejects_bad_topics(bad):
    """A bad topic from the embedding program is its caller's mistake, not a peer's protocol error."""
    async with Broker(MEMORY, port=0) as broker:
        with pytest.raises(zanzara.InvalidArgument) as caught:
            await broker.publish(bad, b"x")
        assert not isinstance(caught.value, zanzara.ProtocolError)
        assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(("qos", "priority"), [(3, None), (1, 256)])
async def test_server_publish_rejects_bad_qos_and_priority(qos, priority):
    async with Broker(MEMORY, port=0) as broker:
        with pytest.raises(zanzara.InvalidArgument):
            await broker.publish("t", b"x", qos=qos, priority=priority)


def test_tune_gc_makes_collections_rarer() -> None:
    # The command calls it; an embedding program may.  It must raise the first threshold
    # (the one that fires per allocation) well above Python's default of 700.
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLD
        assert GC_THRESHOLD[0] >= 10 * 700
    finally:
        gc.set_threshold(*before)
