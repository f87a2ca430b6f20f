"""Nothing acknowledged is lost: SIGKILL the broker mid-stream, restart it, check every message.

The broker runs as a real `zanzara` process with the SQLite store, or with
the Redis store against a real redis-server.  Persistent
sessions (3.1.1 clean session 0 and v5 session expiry) subscribe and go
offline; a publisher streams QoS 1 and QoS 2 messages; the broker is killed
with SIGKILL while messages are in flight; after a restart every message whose
PUBACK/PUBCOMP the publisher had received must reach every subscriber, QoS 2
exactly once.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from zanzara.config import Config, StorageConfig
from zanzara.mqtt.packets import (
    Packet,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
)
from zanzara.mqtt.properties import Properties

from brokerthread import BrokerThread
from clients import V5, V311, PahoClient, RawClient
from command import free_port, read_until_ready
from redisserver import RedisServer, storage_section

ZANZARA = Path(sys.executable).with_name("zanzara")


@pytest.fixture(params=["sqlite", "redis"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The [storage] section of one durable back-end (Redis: its own key prefix per test)."""
    # The shortest lease: a killed broker holds its prefix that long, and these tests restart one.
    return storage_section(request, tmp_path, "dur", "lease = 1.0\n")


class BrokerProcess:
    def __init__(self, tmp: Path, port: int, storage: str) -> None:
        self.cfg = tmp / "zanzara.toml"
        self.cfg.write_text(
            f'allow_anonymous = true\n[[listeners]]\nhost = "127.0.0.1"\nport = {port}\n\n'
            f"[storage]\n{storage}\n[mqtt]\nmax_queued_messages = 100000\n"
        )
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        """Start it; after a kill -9 with Redis, again until the dead broker's lease lapses."""
        deadline = time.monotonic() + 10
        while True:
            self.proc = subprocess.Popen(
                [str(ZANZARA), "-c", str(self.cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            ready, log = read_until_ready(self.proc)
            if ready:
                return
            err = log + self.proc.communicate(timeout=30)[1]
            assert "is in use by another broker" in err and time.monotonic() < deadline, err
            time.sleep(0.1)  # between two tries, each a whole process start

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def collect(client: PahoClient, quiet: float = 1.5) -> list[int]:
    got = []
    while True:
        try:
            msg = client.messages.get(timeout=quiet)
        except Exception:
            return got
        got.append(int(msg.payload))


@pytest.mark.parametrize("qos", [1, 2])
def test_sigkill_mid_stream_loses_nothing_acknowledged(tmp_path, qos, storage):
    port = free_port()
    broker = BrokerProcess(tmp_path, port, storage)
    broker.start()
    try:
        subs = [("dur-v5", V5), ("dur-v311", V311)]
        for cid, version in subs:
            c = PahoClient(port, cid, version=version, clean=False, session_expiry=3600)
            assert c.subscribe("dur/#", qos) == [qos]
            c.disconnect()
        time.sleep(0.2)

        acked: set[int] = set()
        lock = threading.Lock()
        pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="dur-pub", protocol=paho.MQTTv311)
        pub.max_inflight_messages_set(50)
        pub.max_queued_messages_set(0)
        mids: dict[int, int] = {}

        def on_publish(_c, _u, mid, _rc, _p):
            with lock:
                if mid in mids:
                    acked.add(mids[mid])

        pub.on_publish = on_publish
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        for i in range(3000):
            info = pub.publish(f"dur/{i % 7}", str(i).encode(), qos)
            with lock:
                mids[info.mid] = i
            if i == 1500:
                deadline = time.monotonic() + 10
                while len(acked) < 300 and time.monotonic() < deadline:
                    time.sleep(0.01)
                broker.kill()  # mid-stream: publishes in flight, batches half written
                break
        pub.loop_stop()
        with lock:
            acknowledged = set(acked)
        assert len(acknowledged) >= 300, "the stream never got going"

        broker.start()
        for cid, version in subs:
            c = PahoClient(port, cid, version=version, clean=False, session_expiry=3600)
            assert c.session_present
            got = collect(c)
            c.disconnect()
            missing = acknowledged - set(got)
            assert not missing, (
                f"{cid}: {len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:5]}"
            )
            if qos == 2:
                assert len(got) == len(set(got)), f"{cid}: duplicates at QoS 2"
            ordered = [m for m in got if m in acknowledged]
            assert ordered == sorted(ordered), f"{cid}: order per publisher not kept"
    finally:
        broker.stop()


def test_retained_and_subscriptions_survive_restart(tmp_path, storage):
    port = free_port()
    broker = BrokerProcess(tmp_path, port, storage)
    broker.start()
    try:
        c = PahoClient(port, "keeper", version=V5, clean=False, session_expiry=600)
        c.subscribe("keep/#", 1)
        c.disconnect()
        p = PahoClient(port, version=V5)
        p.publish("keep/state", b"on", 1, retain=True)
        p.publish("keep/queued", b"while away", 1)
        p.disconnect()
        broker.kill()
        broker.start()
        late = PahoClient(port, version=V5)
        late.subscribe("keep/state", 1)
        msg = late.expect()
        assert (msg.payload, msg.retain) == (b"on", True)
        back = PahoClient(port, "keeper", version=V5, clean=False, session_expiry=600)
        assert back.session_present
        got = {m.topic: m.payload for m in back.expect_n(2)}
        assert got == {"keep/state": b"on", "keep/queued": b"while away"}
    finally:
        broker.stop()


@pytest.mark.parametrize("version", [V5, V311])
def test_will_of_a_client_connected_at_the_crash_is_published_after_restart(tmp_path, storage, version):
    """The broker died under a connected client: its connection ended abnormally, so its will goes out
    after the restart (v5: after the will delay, counted from the restart) [MQTT-3.1.2-8]."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties as PahoProperties

    port = free_port()
    broker = BrokerProcess(tmp_path, port, storage)
    broker.start()
    try:
        watcher = PahoClient(port, "watcher", version=V5, clean=False, session_expiry=600)
        watcher.subscribe("status/#", 1)
        watcher.disconnect()
        will_props = None
        if version == V5:
            will_props = PahoProperties(PacketTypes.WILLMESSAGE)
            will_props.WillDelayInterval = 1
        device = PahoClient(
            port, "device", version=version, clean=False, session_expiry=600,
            will=("status/device", b"offline", 1, False), will_properties=will_props,
        )  # fmt: skip
        device.client.loop_stop()  # connected, but it will not reconnect (which cancels a delayed will)
        time.sleep(0.3)  # the CONNECT (and its will) is committed
        broker.kill()
        started = time.monotonic()
        broker.start()
        back = PahoClient(port, "watcher", version=V5, clean=False, session_expiry=600)
        msg = back.expect(timeout=5)
        assert (msg.topic, msg.payload) == ("status/device", b"offline")
        if version == V5:
            assert time.monotonic() - started >= 0.9  # the delay ran from the restart
        back.expect_none(0.5)
    finally:
        broker.stop()


def test_a_delayed_will_survives_a_restart_and_a_reconnect_cancels_it(tmp_path, storage):
    """A will waiting out its delay when the broker stops is still published after the restart, once."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties as PahoProperties

    port = free_port()
    broker = BrokerProcess(tmp_path, port, storage)
    broker.start()
    try:
        watcher = PahoClient(port, "watcher2", version=V5, clean=False, session_expiry=600)
        watcher.subscribe("status/#", 1)
        watcher.disconnect()
        will_props = PahoProperties(PacketTypes.WILLMESSAGE)
        will_props.WillDelayInterval = 2
        for cid in ("gone", "returns"):
            dev = PahoClient(
                port, cid, version=V5, clean=False, session_expiry=600,
                will=(f"status/{cid}", b"offline", 1, False), will_properties=will_props,
            )  # fmt: skip
            dev.disconnect(reason_code=4)  # v5 "disconnect with will message": the delay starts
        time.sleep(0.3)
        broker.kill()
        broker.start()
        PahoClient(port, "returns", version=V5, clean=False, session_expiry=600)  # cancels its will
        back = PahoClient(port, "watcher2", version=V5, clean=False, session_expiry=600)
        msg = back.expect(timeout=5)
        assert (msg.topic, msg.payload) == ("status/gone", b"offline")
        back.expect_none(2.5)
    finally:
        broker.stop()


def test_qos2_incoming_state_survives_restart(tmp_path, storage):
    """[MQTT-4.3.3] a QoS 2 PUBLISH resent after a restart (before PUBREL) is not delivered twice."""
    from zanzara.mqtt.enums import ProtocolVersion
    from zanzara.mqtt.packets import Connect, PubComp, Publish, PubRec, PubRel
    from zanzara.mqtt.properties import Properties

    from clients import RawClient

    port = free_port()
    broker = BrokerProcess(tmp_path, port, storage)
    broker.start()
    try:
        sub = PahoClient(port, "eo-sub", version=V5, clean=False, session_expiry=600)
        sub.subscribe("eo/x", 2)
        sub.disconnect()
        raw = RawClient(port)
        raw.send(
            Connect(
                protocol_version=ProtocolVersion.MQTT5,
                client_id="eo-pub",
                clean_start=False,
                properties=Properties(session_expiry_interval=600),
            )
        )
        raw.recv()
        raw.send(Publish(topic="eo/x", payload=b"once", qos=2, packet_id=9))
        assert isinstance(raw.recv(), PubRec)
        broker.kill()
        broker.start()
        raw = RawClient(port)
        raw.send(
            Connect(
                protocol_version=ProtocolVersion.MQTT5,
                client_id="eo-pub",
                clean_start=False,
                properties=Properties(session_expiry_interval=600),
            )
        )
        assert raw.recv().session_present
        raw.send(Publish(topic="eo/x", payload=b"once", qos=2, packet_id=9, dup=True))
        assert isinstance(raw.recv(), PubRec)
        raw.send(PubRel(packet_id=9))
        assert raw.recv() == PubComp(packet_id=9)
        back = PahoClient(port, "eo-sub", version=V5, clean=False, session_expiry=600)
        assert back.expect().payload == b"once"
        back.expect_none(0.8)
    finally:
        broker.stop()


def test_locked_database_is_reported_and_the_broker_recovers(tmp_path, caplog):
    """A store that fails is reported (log, v5 PUBACK 0x80) and the broker recovers when it returns."""
    import logging
    import sqlite3

    from zanzara.mqtt.packets import PubAck, Publish

    from brokerthread import BrokerThread
    from clients import RawClient

    caplog.set_level(logging.WARNING, logger="zanzara")
    db_path = tmp_path / "z.db"
    with BrokerThread(sqlite_config(db_path)) as b:
        sub = PahoClient(b.port, "locked-sub", version=V5, clean=False, session_expiry=600)
        sub.subscribe("lock/#", 1)
        sub.disconnect()
        b.wait_offline("locked-sub")
        raw = RawClient(b.port)
        raw.connect("locked-pub")
        blocker = sqlite3.connect(db_path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the database
        raw.send(Publish(topic="lock/a", payload=b"during", qos=1, packet_id=1))
        ack = raw.recv(timeout=10)
        assert isinstance(ack, PubAck) and ack.reason_code == 0x80
        assert ack.properties.reason_string == "store unavailable"
        blocker.execute("ROLLBACK")
        blocker.close()
        raw.send(Publish(topic="lock/a", payload=b"after", qos=1, packet_id=2))
        ok = raw.recv(timeout=10)
        assert isinstance(ok, PubAck) and (ok.packet_id, ok.reason_code) == (2, 0)
        back = PahoClient(b.port, "locked-sub", version=V5, clean=False, session_expiry=600)
        assert [m.payload for m in back.expect_n(2)] == [b"during", b"after"]
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("zanzara")]
    assert any("sqlite store failed" in m for m in logged)
    assert any("sqlite store is back" in m for m in logged)


def test_locked_database_closes_a_311_publisher_which_resends_after_reconnecting(tmp_path):
    """3.1.1 has no negative PUBACK: a publisher whose message could not be committed is closed
    (left waiting, it would hold a place in its inflight window for good) and resends it, DUP, on
    its next connection [MQTT-4.4.0-1]; nothing acknowledged is lost."""
    import sqlite3

    from zanzara.mqtt.enums import ProtocolVersion
    from zanzara.mqtt.packets import Connect, PubAck, Publish

    from brokerthread import BrokerThread
    from clients import RawClient

    v311 = ProtocolVersion.MQTT311
    db_path = tmp_path / "z.db"
    with BrokerThread(sqlite_config(db_path)) as b:
        sub = PahoClient(b.port, "locked-sub-311", version=V311, clean=False)
        sub.subscribe("lock311/#", 1)
        sub.disconnect()
        b.wait_offline("locked-sub-311")
        raw = RawClient(b.port, v311)
        raw.send(Connect(protocol_version=v311, client_id="locked-pub-311", clean_start=False))
        raw.recv()
        blocker = sqlite3.connect(db_path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the database
        raw.send(Publish(topic="lock311/a", payload=b"during", qos=1, packet_id=1))
        assert raw.expect_closed(timeout=15) == []  # no PUBACK: nothing was made durable
        blocker.execute("ROLLBACK")
        blocker.close()
        again = RawClient(b.port, v311)
        again.send(Connect(protocol_version=v311, client_id="locked-pub-311", clean_start=False))
        again.recv()
        again.send(Publish(topic="lock311/a", payload=b"during", qos=1, packet_id=1, dup=True))
        ack = again.recv(timeout=10)
        assert isinstance(ack, PubAck) and ack.packet_id == 1
        back = PahoClient(b.port, "locked-sub-311", version=V311, clean=False)
        assert [m.payload for m in back.expect_n(1)] == [b"during"]
        back.disconnect()
        again.close()


def test_stopped_redis_is_reported_and_the_broker_recovers(tmp_path, caplog):
    """Redis stopped: v5 PUBACK 0x80 and a log line; Redis back: acks resume, nothing is lost."""
    import logging

    from zanzara.config import Config, StorageConfig
    from zanzara.mqtt.packets import PubAck, Publish

    from brokerthread import BrokerThread
    from clients import RawClient

    caplog.set_level(logging.WARNING, logger="zanzara")
    server = RedisServer(tmp_path / "redis").start()
    try:
        cfg = Config(storage=StorageConfig(backend="redis", url=server.url))
        with BrokerThread(cfg) as b:
            sub = PahoClient(b.port, "r-sub", version=V5, clean=False, session_expiry=600)
            sub.subscribe("red/#", 1)
            sub.disconnect()
            b.wait_offline("r-sub")
            raw = RawClient(b.port)
            raw.connect("r-pub")
            server.stop()
            raw.send(Publish(topic="red/a", payload=b"during", qos=1, packet_id=1))
            ack = raw.recv(timeout=15)
            assert isinstance(ack, PubAck) and ack.reason_code == 0x80
            assert ack.properties.reason_string == "store unavailable"
            server.start()
            deadline = time.monotonic() + 15
            while True:  # the broker retries with backoff; the first PUBACK 0 says it is back
                raw.send(Publish(topic="red/a", payload=b"after", qos=1, packet_id=2))
                ok = raw.recv(timeout=15)
                assert isinstance(ok, PubAck)
                if ok.reason_code == 0:
                    break
                assert time.monotonic() < deadline, "the broker did not recover after Redis came back"
                time.sleep(0.5)
            back = PahoClient(b.port, "r-sub", version=V5, clean=False, session_expiry=600)
            payloads = [m.payload for m in back.expect_n(2)]
            assert payloads[0] == b"during" and b"after" in payloads
    finally:
        server.stop()
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("zanzara")]
    assert any("redis store failed" in m for m in logged)
    assert any("redis store is back" in m for m in logged)


class HeldCommits:
    """The store's commits, handed to the broker only when the test opens the gates (each gate
    becomes openable once its real commit is durable)."""

    def __init__(self, b: BrokerThread) -> None:
        self.b = b
        self.ready: list[asyncio.Future[None]] = []
        store = b.broker._store
        real_commit = store.commit

        def gated_commit() -> asyncio.Future[None]:
            gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            real_commit().add_done_callback(lambda _: self.ready.append(gate))
            return gate

        b.call(lambda: setattr(store, "commit", gated_commit))

    def wait_committed(self) -> None:
        deadline = time.monotonic() + 5
        while not self.b.call(lambda: len(self.ready)):
            assert time.monotonic() < deadline, "nothing was committed"
            time.sleep(0.01)

    def open(self) -> None:
        self.b.call(lambda: [gate.set_result(None) for gate in self.ready if not gate.done()])

    def reply_after_release(self, device: RawClient) -> Packet:
        """The broker's answer, which must not come while the committed state is held back."""
        self.wait_committed()
        with pytest.raises(AssertionError, match="expected a packet"):
            device.recv(timeout=0.3)
        self.open()
        return device.recv()


def sqlite_config(path: Path) -> Config:
    return Config(storage=StorageConfig(backend="sqlite", path=str(path)))


def persistent_raw(b: BrokerThread, client_id: str) -> RawClient:
    device = RawClient(b.port)
    device.connect(client_id, clean_start=False, properties=Properties(session_expiry_interval=3600))
    return device


def test_pubrel_waits_for_the_pubrec_state_to_be_durable(tmp_path):
    """Exactly once across a crash: MQTT 5 section 4.3.3 forbids sending a PUBLISH again once its
    PUBREL went out, so the broker sends PUBREL only after "PUBREC received" is committed (a
    restart then resends the PUBREL, never the PUBLISH the client already released)."""
    cfg = sqlite_config(tmp_path / "z.db")
    with BrokerThread(cfg) as b:
        device = persistent_raw(b, "qos2-device")
        device.send(Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="q2/#", qos=2),)))
        device.recv()  # SUBACK
        commits = HeldCommits(b)
        # wait=False: the test holds every commit, this publish's too, until the PUBREC's.
        b.run(b.broker.publish("q2/x", b"once", qos=2, wait=False))
        publish = device.recv()
        assert isinstance(publish, Publish) and publish.qos == 2
        device.send(PubRec(packet_id=publish.packet_id))
        pubrel = commits.reply_after_release(device)
        assert isinstance(pubrel, PubRel) and pubrel.packet_id == publish.packet_id
        device.send(PubComp(packet_id=publish.packet_id))
        device.close()


def test_pubcomp_waits_for_the_packet_id_release_to_be_durable(tmp_path):
    """After PUBCOMP the client may reuse the packet id for a new message [MQTT-4.3.3]; were the
    release not durable first, a restart would drop that new message as a resend."""
    cfg = sqlite_config(tmp_path / "z.db")
    with BrokerThread(cfg) as b:
        device = persistent_raw(b, "qos2-publisher")
        device.send(Publish(topic="q2/in", payload=b"x", qos=2, packet_id=7))
        assert isinstance(device.recv(), PubRec)
        commits = HeldCommits(b)
        device.send(PubRel(packet_id=7))
        pubcomp = commits.reply_after_release(device)
        assert isinstance(pubcomp, PubComp) and pubcomp.packet_id == 7 and pubcomp.reason_code == 0
        device.close()


def test_unsuback_waits_for_the_removal_to_be_durable(tmp_path):
    """As SUBACK waits for its subscriptions, UNSUBACK waits for their removal: a restart cannot
    bring back a subscription the client was told is gone."""
    cfg = sqlite_config(tmp_path / "z.db")
    with BrokerThread(cfg) as b:
        device = persistent_raw(b, "leaver")
        device.send(Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="u/#", qos=1),)))
        device.recv()  # SUBACK
        commits = HeldCommits(b)
        device.send(Unsubscribe(packet_id=2, topic_filters=("u/#",)))
        unsuback = commits.reply_after_release(device)
        assert isinstance(unsuback, UnsubAck) and unsuback.packet_id == 2
        device.close()
    with BrokerThread(cfg) as b:
        assert b.call(lambda: dict(b.broker.core.sessions["leaver"].subscriptions)) == {}


# -- the embedded publish keeps the promise of a PUBACK ------------------------------------------

PUBLISH_THEN_KILL = """
import asyncio, os, signal, sys

from zanzara import Broker, Config
from zanzara.config import ListenerConfig, StorageConfig


async def main() -> None:
    storage = StorageConfig(backend="sqlite", path=sys.argv[1])
    broker = Broker(Config(listeners=(ListenerConfig(host="127.0.0.1", port=0),), storage=storage))
    await broker.start()
    await broker.publish("kill/device", b"committed, then killed", qos=1, retain=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no stop(), no flush: only what publish() waited for


asyncio.run(main())
"""


def test_an_embedded_publish_survives_a_sigkill_right_after_it_returns(tmp_path):
    db = tmp_path / "data" / "z.db"
    with BrokerThread(sqlite_config(db)) as b:
        device = PahoClient(b.port, "kill-device", version=V311, clean=False)
        assert device.subscribe("kill/#", 1) == [1]
        device.disconnect()
    script = tmp_path / "publish_then_kill.py"
    script.write_text(PUBLISH_THEN_KILL)
    run = subprocess.run([sys.executable, str(script), str(db)], capture_output=True, text=True, timeout=60)
    assert run.returncode == -signal.SIGKILL, run.stderr
    with BrokerThread(sqlite_config(db)) as b:
        back = PahoClient(b.port, "kill-device", version=V311, clean=False)
        assert back.session_present
        assert back.expect().payload == b"committed, then killed"  # its queue entry was committed
        newcomer = PahoClient(b.port, version=V5)
        newcomer.subscribe("kill/device", 1)
        retained = newcomer.expect()  # and so was the retained message
        assert (retained.payload, retained.retain) == (b"committed, then killed", True)


def test_an_embedded_publish_returns_only_once_committed(tmp_path):
    with BrokerThread(sqlite_config(tmp_path / "z.db")) as b:
        device = PahoClient(b.port, "held-device", version=V5, clean=False, session_expiry=600)
        device.subscribe("held/#", 1)
        device.disconnect()
        b.wait_offline("held-device")
        commits = HeldCommits(b)
        waiting = asyncio.run_coroutine_threadsafe(b.broker.publish("held/x", b"m", qos=1), b.loop)
        commits.wait_committed()  # durable in the file, but not handed to the broker yet
        with pytest.raises(TimeoutError):
            waiting.result(0.3)
        # Fire and forget returns although the commit is held (QoS 0 never waits).
        assert b.run(b.broker.publish("held/y", b"m", qos=1, wait=False)).message_id is not None
        b.run(b.broker.publish("held/z", b"m", qos=0))
        commits.open()
        assert waiting.result(5).matched == 1


def test_an_embedded_publish_raises_when_the_store_fails(tmp_path):
    """StoreError names the message; it was routed all the same, and reaches the session once
    the store is back (so a retry may deliver it twice: at least once)."""
    import sqlite3

    from zanzara import StoreError

    db = tmp_path / "z.db"
    with BrokerThread(sqlite_config(db)) as b:
        device = PahoClient(b.port, "failing-device", version=V5, clean=False, session_expiry=600)
        device.subscribe("fail/#", 1)
        device.disconnect()
        b.wait_offline("failing-device")
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the database
        with pytest.raises(
            StoreError, match=r"message \w+ to 'fail/a' was not stored: sqlite store unavailable"
        ):
            b.run(b.broker.publish("fail/a", b"during", qos=1))
        blocker.execute("ROLLBACK")
        blocker.close()
        deadline = time.monotonic() + 15
        while True:  # the writer retries with backoff; the first publish that returns says it is back
            try:
                b.run(b.broker.publish("fail/a", b"after", qos=1))
                break
            except StoreError:
                assert time.monotonic() < deadline, "the store did not come back"
        back = PahoClient(b.port, "failing-device", version=V5, clean=False, session_expiry=600)
        payloads = [m.payload for m in back.expect_n(2)]
        assert payloads[0] == b"during" and b"after" in payloads
