"""SQLite store: the default, embedded, one file under ``./data/`` (WAL mode).

All SQL runs on one dedicated thread (sqlite3 connections are not shared
across threads); the event loop only appends operations to the current batch
(see ``batch.py``), and each batch is one transaction.

Durability: ``fsync`` (``synchronous=FULL``): a committed batch survives
``kill -9`` and power loss.  ``os`` (``synchronous=NORMAL`` in WAL mode):
survives ``kill -9``; a power loss may drop the last batches the OS had not
written yet.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from ..message import Message
from ..mqtt.codec import decode_properties, encode_properties
from ..mqtt.enums import PacketType
from ..mqtt.properties import EMPTY_PROPERTIES
from ..session import OutState
from ..storage import DeliveryStatus, QueueRecord, Receipt, SessionRecord, Snapshot
from ..topic_tree import SubscriptionEntry
from .batch import Op
from .recording import RecordingStore
from .records import decode_will, encode_will

__all__ = ["SqliteStore"]

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL,
    retain INTEGER NOT NULL, properties BLOB, expires_at REAL, priority INTEGER NOT NULL,
    sender TEXT, created_at REAL NOT NULL, collapse_key TEXT
);
CREATE TABLE IF NOT EXISTS sessions (
    client_id TEXT PRIMARY KEY, expiry_interval INTEGER NOT NULL, disconnected_at REAL, will BLOB
);
CREATE TABLE IF NOT EXISTS subscriptions (
    client_id TEXT NOT NULL, topic_filter TEXT NOT NULL, qos INTEGER NOT NULL, no_local INTEGER NOT NULL,
    retain_as_published INTEGER NOT NULL, subscription_id INTEGER, share_group TEXT,
    PRIMARY KEY (client_id, topic_filter)
);
CREATE TABLE IF NOT EXISTS queue (
    client_id TEXT NOT NULL, message_id TEXT NOT NULL, seq INTEGER NOT NULL, qos INTEGER NOT NULL,
    retain INTEGER NOT NULL, subscription_ids TEXT NOT NULL, state TEXT NOT NULL, packet_id INTEGER NOT NULL,
    PRIMARY KEY (client_id, message_id)
);
CREATE INDEX IF NOT EXISTS queue_message ON queue (message_id);
CREATE TABLE IF NOT EXISTS incoming (client_id TEXT NOT NULL, packet_id INTEGER NOT NULL,
    PRIMARY KEY (client_id, packet_id));
CREATE TABLE IF NOT EXISTS retained (topic TEXT PRIMARY KEY, message_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS receipts (
    message_id TEXT NOT NULL, client_id TEXT NOT NULL, status TEXT NOT NULL, queued_at REAL, sent_at REAL,
    acknowledged_at REAL, finished_at REAL, reason TEXT, updated_at REAL NOT NULL,
    PRIMARY KEY (message_id, client_id)
);
CREATE INDEX IF NOT EXISTS receipts_updated ON receipts (updated_at);
"""

_GC = """DELETE FROM messages WHERE id = ? AND NOT EXISTS (SELECT 1 FROM queue WHERE message_id = ?)
AND NOT EXISTS (SELECT 1 FROM retained WHERE message_id = ?)"""


class SqliteStore(RecordingStore):
    name = "sqlite"

    def __init__(
        self, path: str | Path = "data/zanzara.db", *, durability: Literal["fsync", "os"] = "fsync"
    ) -> None:
        self.path = Path(path)
        self.durability = durability
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zanzara-sqlite")
        self._db: sqlite3.Connection | None = None
        super().__init__()

    # -- lifecycle ----------------------------------------------------------------

    async def open(self) -> Snapshot:
        loop = asyncio.get_running_loop()
        snapshot = await loop.run_in_executor(self._executor, self._open_and_load)
        self._writer.start()
        return snapshot

    def _open_and_load(self) -> Snapshot:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A locked database fails a batch after 2 s (then retried) instead of stalling acks for long.
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=2.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=" + ("FULL" if self.durability == "fsync" else "NORMAL"))
        db.executescript(SCHEMA)
        # Databases from 0.1.0 development builds lack these columns.
        for table, column, kind in (("messages", "collapse_key", "TEXT"), ("sessions", "will", "BLOB")):
            if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")  # constants only
        self._db = db
        return self._load(db)

    def _load(self, db: sqlite3.Connection) -> Snapshot:
        snap = Snapshot()
        messages: dict[str, Message] = {}
        for row in db.execute("SELECT * FROM messages"):
            messages[row[0]] = _message(row)
        rows = db.execute("SELECT client_id, expiry_interval, disconnected_at, will FROM sessions")
        for cid, expiry, disconnected_at, will in rows:
            snap.sessions.append(
                SessionRecord(
                    client_id=cid,
                    expiry_interval=expiry,
                    disconnected_at=disconnected_at,
                    will=decode_will(bytes(will)) if will is not None else None,
                )
            )
        for cid, tf, qos, nl, rap, sid, group in db.execute("SELECT * FROM subscriptions"):
            snap.subscriptions.append(
                SubscriptionEntry(
                    client_id=cid,
                    topic_filter=tf,
                    qos=qos,
                    no_local=bool(nl),
                    retain_as_published=bool(rap),
                    subscription_id=sid,
                    share_group=group,
                )
            )
        rows = db.execute(
            "SELECT client_id, message_id, seq, qos, retain, subscription_ids, state, packet_id"
            " FROM queue ORDER BY seq"
        )
        for cid, mid, seq, qos, retain, sub_ids, state, pid in rows:
            self._seq = max(self._seq, seq)
            message = messages.get(mid)
            if message is None:
                continue
            snap.queues.setdefault(cid, []).append(
                QueueRecord(
                    message=message,
                    qos=qos,
                    retain=bool(retain),
                    subscription_ids=tuple(json.loads(sub_ids)),
                    state=OutState(state),
                    packet_id=pid,
                )
            )
        for cid, pid in db.execute("SELECT client_id, packet_id FROM incoming"):
            snap.incoming.setdefault(cid, set()).add(pid)
        for _topic, mid in db.execute("SELECT topic, message_id FROM retained"):
            if mid in messages:
                snap.retained.append(messages[mid])
        return snap

    async def close(self) -> None:
        self._receipts.due()
        await self._writer.close()
        loop = asyncio.get_running_loop()
        if self._db is not None:
            await loop.run_in_executor(self._executor, self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)

    async def receipts(self, message_id: str) -> list[Receipt]:
        self._receipts.due()
        await self._writer.flush()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._read_receipts, message_id)

    def _read_receipts(self, message_id: str) -> list[Receipt]:
        assert self._db is not None
        rows = self._db.execute(
            "SELECT message_id, client_id, status, queued_at, sent_at, acknowledged_at, finished_at, reason"
            " FROM receipts WHERE message_id = ? ORDER BY client_id",
            (message_id,),
        )
        return [
            Receipt(
                message_id=r[0],
                client_id=r[1],
                status=DeliveryStatus(r[2]),
                queued_at=r[3],
                sent_at=r[4],
                acknowledged_at=r[5],
                finished_at=r[6],
                reason=r[7],
            )
            for r in rows
        ]

    # -- the writer thread ----------------------------------------------------------

    async def _write(self, ops: list[Op]) -> None:
        loop = asyncio.get_running_loop()
        receipts = self._receipts.take()  # in the same loop iteration as ``ops`` were taken
        try:
            await loop.run_in_executor(self._executor, self._apply, ops, receipts)
        except BaseException:
            self._receipts.give_back(receipts)
            raise

    def _apply(self, ops: list[Op], receipts: dict[tuple[str, str], Receipt]) -> None:
        db = self._db
        if db is None:
            raise RuntimeError("store is closed")
        touched: set[str] = set()
        # Queue operations are folded into their net effect per (client, message) and written
        # with one executemany per statement: entries of different keys are independent, and a
        # session_delete drops what came before it for that client.
        net: dict[tuple[str, str], list[Any]] = {}
        messages: dict[str, Message] = {}
        db.execute("BEGIN")
        try:
            for op in ops:
                kind = op[0]
                if kind == "enqueue":
                    _, cid, rec, seq = op
                    msg = rec.message
                    messages[msg.message_id] = msg
                    row = [cid, msg.message_id, seq, rec.qos, int(rec.retain),
                           json.dumps(rec.subscription_ids), rec.state.value, rec.packet_id]  # fmt: skip
                    net[(cid, msg.message_id)] = ["put", row]
                elif kind == "update":
                    _, cid, mid, out_state, pid = op
                    state = out_state.value
                    effect = net.get((cid, mid))
                    if effect is None or effect[0] == "update":
                        net[(cid, mid)] = ["update", state, pid]
                    elif effect[0] == "put":
                        effect[1][6], effect[1][7] = state, pid
                elif kind == "dequeue":
                    net[(op[1], op[2])] = ["delete"]
                    touched.add(op[2])
                elif kind == "incoming_put":
                    db.execute("INSERT OR IGNORE INTO incoming VALUES (?, ?)", (op[1], op[2]))
                elif kind == "incoming_delete":
                    db.execute("DELETE FROM incoming WHERE client_id = ? AND packet_id = ?", (op[1], op[2]))
                elif kind == "session_put":
                    rec = op[1]
                    will = encode_will(rec.will) if rec.will is not None else None
                    db.execute(
                        "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?)",
                        (rec.client_id, rec.expiry_interval, rec.disconnected_at, will),
                    )
                elif kind == "session_delete":
                    cid = op[1]
                    for key in [key for key in net if key[0] == cid]:
                        del net[key]
                    touched.update(
                        r[0] for r in db.execute("SELECT message_id FROM queue WHERE client_id = ?", (cid,))
                    )
                    for table in ("sessions", "subscriptions", "queue", "incoming"):
                        db.execute(
                            f"DELETE FROM {table} WHERE client_id = ?", (cid,)
                        )  # table names are constants
                elif kind == "subscription_put":
                    e = op[1]
                    db.execute(
                        "INSERT OR REPLACE INTO subscriptions VALUES (?,?,?,?,?,?,?)",
                        (e.client_id, e.topic_filter, e.qos, int(e.no_local), int(e.retain_as_published),
                         e.subscription_id, e.share_group),
                    )  # fmt: skip
                elif kind == "subscription_delete":
                    db.execute(
                        "DELETE FROM subscriptions WHERE client_id = ? AND topic_filter = ?", (op[1], op[2])
                    )
                elif kind == "retained_put":
                    msg = op[1]
                    old = db.execute(
                        "SELECT message_id FROM retained WHERE topic = ?", (msg.topic,)
                    ).fetchone()
                    if old:
                        touched.add(old[0])
                    _put_messages(db, [msg])
                    db.execute("INSERT OR REPLACE INTO retained VALUES (?, ?)", (msg.topic, msg.message_id))
                elif kind == "retained_delete":
                    old = db.execute("SELECT message_id FROM retained WHERE topic = ?", (op[1],)).fetchone()
                    if old:
                        touched.add(old[0])
                        db.execute("DELETE FROM retained WHERE topic = ?", (op[1],))
                elif kind == "receipts":
                    pass  # written below, coalesced
                elif kind == "receipts_purge":
                    db.execute("DELETE FROM receipts WHERE updated_at < ?", (op[1],))
                else:
                    raise ValueError(f"unknown store operation {kind!r}")
            if net:
                self._apply_queue(db, net, messages)
            if receipts:
                db.executemany(
                    "INSERT OR REPLACE INTO receipts VALUES (?,?,?,?,?,?,?,?,?)",
                    [_receipt_row(r) for r in receipts.values()],
                )
            if touched:
                db.executemany(_GC, [(mid, mid, mid) for mid in touched])
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    @staticmethod
    def _apply_queue(
        db: sqlite3.Connection, net: dict[tuple[str, str], list[Any]], messages: dict[str, Message]
    ) -> None:
        puts: list[list[Any]] = []
        updates: list[tuple[Any, ...]] = []
        deletes: list[tuple[str, str]] = []
        needed: set[str] = set()
        for (cid, mid), effect in net.items():
            what = effect[0]
            if what == "put":
                puts.append(effect[1])
                needed.add(mid)
            elif what == "update":
                updates.append((effect[1], effect[2], cid, mid))
            else:
                deletes.append((cid, mid))
        if needed:
            _put_messages(db, [messages[mid] for mid in needed])
        if puts:
            db.executemany("INSERT OR REPLACE INTO queue VALUES (?,?,?,?,?,?,?,?)", puts)
        if updates:
            db.executemany(
                "UPDATE queue SET state = ?, packet_id = ? WHERE client_id = ? AND message_id = ?", updates
            )
        if deletes:
            db.executemany("DELETE FROM queue WHERE client_id = ? AND message_id = ?", deletes)


_PUBLISH = PacketType.PUBLISH


def _put_messages(db: sqlite3.Connection, msgs: list[Message]) -> None:
    db.executemany(
        "INSERT OR IGNORE INTO messages VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        [
            (
                m.message_id, m.topic, m.payload, m.qos, int(m.retain),
                None if m.properties is EMPTY_PROPERTIES else encode_properties(m.properties, _PUBLISH),
                m.expires_at, m.priority, m.sender, m.created_at, m.collapse_key,
            )
            for m in msgs
        ],
    )  # fmt: skip


def _message(row: Any) -> Message:
    # sqlite3 rows are untyped; the schema above fixes each column's type.
    mid, topic, payload, qos, retain, props, expires_at, priority, sender, created_at, collapse_key = row
    return Message(
        message_id=mid,
        topic=topic,
        payload=bytes(payload),
        qos=qos,
        retain=bool(retain),
        properties=decode_properties(bytes(props), PacketType.PUBLISH) if props else EMPTY_PROPERTIES,
        expires_at=expires_at,
        priority=priority,
        sender=sender,
        created_at=created_at,
        collapse_key=collapse_key,
    )


def _receipt_row(r: Receipt) -> tuple[object, ...]:
    return (
        r.message_id,
        r.client_id,
        r.status.value,
        r.queued_at,
        r.sent_at,
        r.acknowledged_at,
        r.finished_at,
        r.reason,
        r.updated_at,
    )
