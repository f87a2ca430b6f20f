"""The SQLite back-end passes the store contract, and old databases are migrated."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import threading
from pathlib import Path

import pytest

from zanzara.backends.sqlite import WRITER_NICENESS, SqliteStore
from zanzara.message import Message
from zanzara.session import Delivery
from zanzara.storage import DeliveryStatus, QueueRecord, Receipt, SessionRecord, Store

from .contract import Backend, StoreContract, msg


@pytest.fixture
def backend(tmp_path: Path) -> Backend:
    path = tmp_path / "data" / "z.db"

    async def count(store: Store) -> int:
        await store.commit()
        with sqlite3.connect(path) as db:
            return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])

    return Backend(make=lambda: SqliteStore(path), count_messages=count)


class TestSqliteStore(StoreContract):
    pass


async def test_a_database_without_collapse_keys_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the messages table of the first development builds
        db.execute(
            "CREATE TABLE messages (id TEXT PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL,"
            " qos INTEGER NOT NULL, retain INTEGER NOT NULL, properties BLOB, expires_at REAL,"
            " priority INTEGER NOT NULL, sender TEXT, created_at REAL NOT NULL)"
        )
    store = SqliteStore(path)
    await store.open()
    store.retained_put(msg(1, retain=True, collapse_key="k"))
    await store.commit()
    await store.close()
    store = SqliteStore(path)
    snap = await store.open()
    assert [m.collapse_key for m in snap.retained] == ["k"]
    await store.close()


async def test_a_database_without_wills_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE sessions (client_id TEXT PRIMARY KEY, expiry_interval INTEGER NOT NULL,"
            " disconnected_at REAL)"
        )
        db.execute("INSERT INTO sessions VALUES ('old', 60, 5.0)")
    store = SqliteStore(path)
    snap = await store.open()
    assert [(s.client_id, s.will) for s in snap.sessions] == [("old", None)]
    await store.close()


# The schema of version 1 (rowid tables, a queue index for collecting messages).
V1_SCHEMA = """
CREATE TABLE messages (id TEXT PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL,
    qos INTEGER NOT NULL, retain INTEGER NOT NULL, properties BLOB, expires_at REAL,
    priority INTEGER NOT NULL, sender TEXT, created_at REAL NOT NULL, collapse_key TEXT);
CREATE TABLE sessions (client_id TEXT PRIMARY KEY, expiry_interval INTEGER NOT NULL,
    disconnected_at REAL, will BLOB);
CREATE TABLE subscriptions (client_id TEXT NOT NULL, topic_filter TEXT NOT NULL, qos INTEGER NOT NULL,
    no_local INTEGER NOT NULL, retain_as_published INTEGER NOT NULL, subscription_id INTEGER,
    share_group TEXT, PRIMARY KEY (client_id, topic_filter));
CREATE TABLE queue (client_id TEXT NOT NULL, message_id TEXT NOT NULL, seq INTEGER NOT NULL,
    qos INTEGER NOT NULL, retain INTEGER NOT NULL, subscription_ids TEXT NOT NULL, state TEXT NOT NULL,
    packet_id INTEGER NOT NULL, PRIMARY KEY (client_id, message_id));
CREATE INDEX queue_message ON queue (message_id);
CREATE TABLE incoming (client_id TEXT NOT NULL, packet_id INTEGER NOT NULL,
    PRIMARY KEY (client_id, packet_id));
CREATE TABLE retained (topic TEXT PRIMARY KEY, message_id TEXT NOT NULL);
CREATE TABLE receipts (message_id TEXT NOT NULL, client_id TEXT NOT NULL, status TEXT NOT NULL,
    queued_at REAL, sent_at REAL, acknowledged_at REAL, finished_at REAL, reason TEXT,
    updated_at REAL NOT NULL, PRIMARY KEY (message_id, client_id));
CREATE INDEX receipts_updated ON receipts (updated_at);
INSERT INTO messages VALUES ('m1', 't/1', x'00ff', 1, 0, NULL, NULL, 3, 'pub', 1.0, NULL);
INSERT INTO messages VALUES ('m2', 'r', x'01', 1, 1, NULL, NULL, 0, 'pub', 2.0, NULL);
INSERT INTO messages VALUES ('orphan', 'x', x'', 1, 0, NULL, NULL, 0, NULL, 3.0, NULL);
INSERT INTO sessions VALUES ('dev', 60, 5.0, NULL);
INSERT INTO subscriptions VALUES ('dev', 't/#', 1, 0, 0, NULL, NULL);
INSERT INTO queue VALUES ('dev', 'm1', 7, 1, 0, '[]', 'queued', 0);
INSERT INTO incoming VALUES ('dev', 9);
INSERT INTO retained VALUES ('r', 'm2');
INSERT INTO receipts VALUES ('m1', 'dev', 'queued', 1.0, NULL, NULL, NULL, NULL, 1.0);
"""


async def test_a_version_1_database_is_rebuilt_to_the_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as db:
        db.executescript(V1_SCHEMA)
    store = SqliteStore(path)
    snap = await store.open()
    assert [
        (cid, [(r.message.message_id, r.message.payload) for r in q]) for cid, q in snap.queues.items()
    ] == [("dev", [("m1", b"\x00\xff")])]
    assert [m.message_id for m in snap.retained] == ["m2"]
    assert [e.topic_filter for e in snap.subscriptions] == ["t/#"] and snap.incoming == {"dev": {9}}
    assert [r.status.value for r in await store.receipts("m1")] == ["queued"]
    # Still collected when the last holder goes, now without the old index.
    store.outgoing_delete("dev", "m1")
    await store.commit()
    await store.close()
    with sqlite3.connect(path) as db:
        assert sorted(r[0] for r in db.execute("SELECT id FROM messages")) == ["m2"]  # orphan gone too
        assert db.execute("PRAGMA user_version").fetchone()[0] == 3
        tables = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall())
        assert sorted(tables) == sorted(["messages", "sessions", "subscriptions", "queue", "incoming",
                                         "retained", "receipts"])  # fmt: skip
        assert all("WITHOUT ROWID" in tables[t] for t in ("queue", "receipts", "subscriptions", "incoming"))
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert not indexes & {"queue_message", "receipts_updated"}


async def test_queue_rows_naming_the_awaited_packet_resume_their_flow(tmp_path: Path) -> None:
    """Rows written before the one delivery-status enum said "wait_puback", "wait_pubrec" or
    "wait_pubcomp": they are read as SENT (the PUBLISH is resent, DUP) or RELEASED (the PUBREL is)."""
    path = tmp_path / "z.db"
    store = SqliteStore(path)
    await store.open()
    store.session_put(SessionRecord(client_id="dev", expiry_interval=100))
    for n, qos in ((1, 1), (2, 2), (3, 2), (4, 1)):
        store.outgoing_enqueue("dev", QueueRecord(message=msg(n), qos=qos, retain=False))
    await store.commit()
    await store.close()
    with sqlite3.connect(path) as db:
        for mid, state, pid in (
            ("m0001", "wait_puback", 1),
            ("m0002", "wait_pubrec", 2),
            ("m0003", "wait_pubcomp", 3),
        ):
            db.execute("UPDATE queue SET state = ?, packet_id = ? WHERE message_id = ?", (state, pid, mid))
    store = SqliteStore(path)
    snap = await store.open()
    assert [(r.message.message_id, r.status, r.packet_id) for r in snap.queues["dev"]] == [
        ("m0001", DeliveryStatus.SENT, 1),
        ("m0002", DeliveryStatus.SENT, 2),
        ("m0003", DeliveryStatus.RELEASED, 3),
        ("m0004", DeliveryStatus.QUEUED, 0),
    ]
    await store.close()


async def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match="newer"):
        await SqliteStore(path).open()


async def test_a_version_2_queue_is_keyed_by_message_first(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    with sqlite3.connect(path) as db:
        db.executescript(V1_SCHEMA)
    store = SqliteStore(path)
    await store.open()  # now the current version; make its queue look like version 2's
    await store.close()
    with sqlite3.connect(path) as db:
        db.executescript(
            "ALTER TABLE queue RENAME TO q3;"
            " CREATE TABLE queue (client_id TEXT NOT NULL, message_id TEXT NOT NULL, seq INTEGER NOT NULL,"
            " qos INTEGER NOT NULL, retain INTEGER NOT NULL, subscription_ids TEXT NOT NULL,"
            " state TEXT NOT NULL, packet_id INTEGER NOT NULL, PRIMARY KEY (client_id, message_id))"
            " WITHOUT ROWID;"
            " INSERT INTO queue SELECT * FROM q3; DROP TABLE q3; PRAGMA user_version = 2;"
        )
    store = SqliteStore(path)
    snap = await store.open()
    assert [(cid, [r.message.message_id for r in q]) for cid, q in snap.queues.items()] == [("dev", ["m1"])]
    store.session_delete("dev")  # found by key through the holders, not by an index on client_id
    await store.commit()
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 3
        sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'queue'").fetchone()[0]
        assert "PRIMARY KEY (message_id, client_id)" in sql
        assert db.execute("SELECT count(*) FROM queue").fetchone()[0] == 0
        assert sorted(r[0] for r in db.execute("SELECT id FROM messages")) == ["m2"]  # m1 collected


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread niceness is a Linux feature")
async def test_the_writer_thread_runs_below_the_event_loop(tmp_path: Path) -> None:
    # On a shared core the loop's deliveries come first and the writer gathers bigger batches.
    store = SqliteStore(tmp_path / "z.db")
    await store.open()
    try:
        loop = asyncio.get_running_loop()
        writer_tid = await loop.run_in_executor(store._executor, threading.get_native_id)
        main = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert os.getpriority(os.PRIO_PROCESS, writer_tid) == min(19, main + WRITER_NICENESS)
    finally:
        await store.close()


async def test_a_receipt_is_stored_with_its_updated_at(tmp_path: Path) -> None:
    # SQL builds each receipt row from its Delivery and computes updated_at (what purging counts
    # from): it must be Receipt.updated_at for every step a delivery can be at.
    path = tmp_path / "z.db"
    store = SqliteStore(path)
    await store.open()
    s = DeliveryStatus
    m = Message(topic="t", payload=b"x", qos=1, message_id="m1")
    steps = [
        (s.QUEUED, Delivery(message=m, qos=1, retain=False, client_id="a", queued_at=10.0)),
        (s.SENT, Delivery(message=m, qos=1, retain=False, client_id="b", queued_at=10.0, sent_at=11.0)),
        (s.ACKNOWLEDGED, Delivery(message=m, qos=1, retain=False, client_id="c", queued_at=10.0, sent_at=11.0,
                                  acknowledged_at=12.5)),
        (s.EXPIRED, Delivery(message=m, qos=1, retain=False, client_id="d", queued_at=10.0, finished_at=13.0,
                             reason="message expiry")),
        (s.DROPPED, Delivery(message=m, qos=1, retain=False, client_id="e", queued_at=10.0, sent_at=11.0,
                             finished_at=14.0, reason="queue full")),
    ]  # fmt: skip
    for status, out in steps:
        store.receipt_step(status, out)
    receipts = [Receipt.of(status, out) for status, out in steps]
    assert await store.receipts("m1") == receipts
    await store.close()
    with sqlite3.connect(path) as db:
        stored = dict(db.execute("SELECT client_id, updated_at FROM receipts"))
    assert stored == {r.client_id: r.updated_at for r in receipts}
    assert list(stored.values()) == [10.0, 11.0, 12.5, 13.0, 14.0]


async def test_an_overtaken_step_writes_no_row(tmp_path: Path) -> None:
    # A delivery sent and acknowledged before its receipts are written costs one row, and a
    # receipt written at "sent" is replaced by the acknowledgement that comes later.
    store = SqliteStore(tmp_path / "z.db")
    await store.open()
    m = Message(topic="t", payload=b"x", qos=1, message_id="m1")
    quick = Delivery(message=m, qos=1, retain=False, client_id="quick", queued_at=10.0)
    slow = Delivery(message=m, qos=1, retain=False, client_id="slow", queued_at=10.0)
    for out in (quick, slow):
        store.receipt_step(DeliveryStatus.QUEUED, out)
        out.sent_at = 11.0
        store.receipt_step(DeliveryStatus.SENT, out)
    quick.acknowledged_at = 12.0
    store.receipt_step(DeliveryStatus.ACKNOWLEDGED, quick)
    changes = store._db.total_changes if store._db is not None else 0
    assert [(r.client_id, r.status) for r in await store.receipts("m1")] == [
        ("quick", DeliveryStatus.ACKNOWLEDGED),
        ("slow", DeliveryStatus.SENT),
    ]
    assert store._db is not None and store._db.total_changes - changes == 2  # one row each
    slow.acknowledged_at = 13.0
    store.receipt_step(DeliveryStatus.ACKNOWLEDGED, slow)
    assert [(r.client_id, r.status, r.acknowledged_at) for r in await store.receipts("m1")] == [
        ("quick", DeliveryStatus.ACKNOWLEDGED, 12.0),
        ("slow", DeliveryStatus.ACKNOWLEDGED, 13.0),
    ]
    await store.close()
