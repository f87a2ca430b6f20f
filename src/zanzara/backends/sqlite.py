"""SQLite store: the default, embedded, one file under ``./data/`` (WAL mode).

All SQL runs on one dedicated thread (sqlite3 connections are not shared
across threads); the event loop only appends operations to the current batch
(see ``batch.py``), and each batch is one transaction.

Durability: ``fsync`` (``synchronous=FULL``): a committed batch survives
``kill -9`` and power loss.  ``os`` (``synchronous=NORMAL`` in WAL mode):
survives ``kill -9``; a power loss may drop the last batches the OS had not
written yet.

Ownership: a broker holds its database alone.  While the store is open it holds
``<database>.lock`` (``lockfile.py``); a second broker on the same database fails at
``open()`` with :class:`~zanzara.errors.StoreInUse`, naming the path and the holder's pid.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import compress, repeat
from operator import attrgetter, eq
from pathlib import Path
from typing import Any, Literal, assert_never

from ..errors import StoreError
from ..ids import first_message_id
from ..message import Message
from ..mqtt.codec import decode_properties, encode_properties
from ..mqtt.enums import PacketType
from ..mqtt.properties import EMPTY_PROPERTIES
from ..session import Delivery
from ..storage import LATER_STEP_TIMES, DeliveryStatus, QueueRecord, Receipt, SessionRecord, Snapshot
from ..topic_tree import SubscriptionEntry
from .batched import BatchedStore
from .folding import Delete, Effect, FoldedSessionDelete, Ordered, Put, fold
from .holders import Holders
from .lockfile import LockFile
from .ops import (
    IncomingDelete,
    IncomingPut,
    Op,
    OutgoingUpdate,
    ReceiptsPurge,
    ReceiptSteps,
    RetainedDelete,
    RetainedPut,
    SessionPut,
    SubscriptionDelete,
    SubscriptionPut,
)
from .receipts import Steps
from .wills import decode_will, encode_will

__all__ = ["SqliteStore"]

Statement = tuple[str, list[Any]]  # SQL and the parameters of each execution
_QUEUE_DELETE = "DELETE FROM queue WHERE message_id = ? AND client_id = ?"
_QUEUE_UPDATE = "UPDATE queue SET state = ?, packet_id = ? WHERE message_id = ? AND client_id = ?"
# A receipt step is written straight from its Delivery's fields: attrgetter builds each row in C,
# so the writer thread runs no Python per receipt while it shares the GIL with the event loop.
# The row is Receipt.of(status, out) with updated_at (Receipt.updated_at) computed in SQL; a
# step that a later one overtook (storage.overtaken) writes nothing.
_RECEIPT_FIELDS = (
    "message.message_id", "client_id", "queued_at", "sent_at", "acknowledged_at", "finished_at", "reason"
)  # fmt: skip
_RECEIPT_COLUMNS = attrgetter(*_RECEIPT_FIELDS)


def _unless_overtaken(status: DeliveryStatus) -> str:
    later = LATER_STEP_TIMES.get(status)
    if later is None:
        return ""
    return " WHERE " + " AND ".join(f"?{_RECEIPT_FIELDS.index(t) + 1} IS NULL" for t in later)


_RECEIPT_STEP = {
    status: f"INSERT OR REPLACE INTO receipts SELECT ?1, ?2, '{status.value}', nullif(?3, 0.0),"
    " ?4, ?5, ?6, ?7, coalesce(?6, ?5, ?4, nullif(?3, 0.0), 0.0)" + _unless_overtaken(status)
    for status in DeliveryStatus
}
# The same test, made before binding (in C too): most queued and sent steps of a busy broker are
# overtaken by the time they are written, and an execution that inserts nothing still costs one.
_LATER_STEP_TIMES = {status: attrgetter(*names) for status, names in LATER_STEP_TIMES.items()}
_NOT_YET = (None, None)


def _receipt_rows(status: DeliveryStatus, outs: list[Delivery]) -> Iterator[tuple[Any, ...]]:
    later = _LATER_STEP_TIMES.get(status)
    current = outs if later is None else compress(outs, map(eq, map(later, outs), repeat(_NOT_YET)))
    return map(_RECEIPT_COLUMNS, current)


logger = logging.getLogger(__name__)

# Tables keyed by their primary key are WITHOUT ROWID: one B-tree per table instead of a rowid
# table plus a key index, so each queue entry and receipt costs one tree update, not two.
# (messages keeps its rowid: its rows carry payloads, too large for a clustered key.)
SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL,
    retain INTEGER NOT NULL, properties BLOB, expires_at REAL, priority INTEGER NOT NULL,
    sender TEXT, created_at REAL NOT NULL, collapse_key TEXT
);
CREATE TABLE IF NOT EXISTS sessions (
    client_id TEXT PRIMARY KEY, expiry_interval INTEGER NOT NULL, disconnected_at REAL, will BLOB,
    max_queued INTEGER, max_queued_bytes INTEGER
);
CREATE TABLE IF NOT EXISTS subscriptions (
    client_id TEXT NOT NULL, topic_filter TEXT NOT NULL, qos INTEGER NOT NULL, no_local INTEGER NOT NULL,
    retain_as_published INTEGER NOT NULL, subscription_id INTEGER, share_group TEXT,
    PRIMARY KEY (client_id, topic_filter)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queue (
    client_id TEXT NOT NULL, message_id TEXT NOT NULL, seq INTEGER NOT NULL, qos INTEGER NOT NULL,
    retain INTEGER NOT NULL, subscription_ids TEXT NOT NULL, state TEXT NOT NULL, packet_id INTEGER NOT NULL,
    PRIMARY KEY (message_id, client_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS incoming (client_id TEXT NOT NULL, packet_id INTEGER NOT NULL,
    PRIMARY KEY (client_id, packet_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS retained (topic TEXT PRIMARY KEY, message_id TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS receipts (
    message_id TEXT NOT NULL, client_id TEXT NOT NULL, status TEXT NOT NULL, queued_at REAL, sent_at REAL,
    acknowledged_at REAL, finished_at REAL, reason TEXT, updated_at REAL NOT NULL,
    PRIMARY KEY (message_id, client_id)
) WITHOUT ROWID;
"""
SCHEMA_VERSION = 3
# The tables each version rebuilt (their columns unchanged, in order): version 2 made them
# WITHOUT ROWID; version 3 keys the queue by message first.  Message ids grow with time, so
# a publish appends to the queue's tree where a client-first key scattered each batch over
# many pages (6x the cost per row when one publisher feeds many devices); a session's rows
# are found through the in-memory holders (Holders) instead.  Version 3 also drops the
# receipts' index by time: updating a receipt moved its entry in it, doubling the cost of the
# update, and purging finds its candidates by message id (see Store.receipts_purge).
_REBUILT = {2: ("subscriptions", "queue", "incoming", "retained", "receipts"), 3: ("queue",)}

WRITER_NICENESS = 10  # added to the process's niceness for the writer thread


def _yield_to_the_loop() -> None:
    """Lower the writer thread's scheduling priority (Linux: niceness is per thread).

    When the broker has one core, the writer and the event loop share it.  Nobody waits for
    most of what a drain writes (acknowledged entries, receipts), so the loop should deliver
    first and the writer use what is left; its batches grow meanwhile, and a big batch costs
    less per row than many small ones.  Commits a publisher waits for still come while the
    loop idles for its acks; a loop kept busy by other traffic (or a host busy with other
    processes) leaves the writer less, and those acks wait longer.  Measured on one core: a
    1000-session drain 2.7 s -> 1.6 s, persistent QoS 1 fan-in 30k -> 36k msgs/s.
    """
    if sys.platform != "linux":
        return  # elsewhere the id is not a process id, and niceness may be process-wide
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + WRITER_NICENESS))
    except OSError as exc:  # a sandbox may forbid it; the store works the same, only slower
        logger.debug("could not lower the SQLite writer's priority: %s", exc)


class SqliteStore(BatchedStore):
    """The :class:`~zanzara.storage.Store` in one SQLite file, written by one thread of its own.

    ``open()`` takes the database's lock file and loads the snapshot; every statement runs on
    the store's thread, never on the event loop.  ``durability`` picks ``synchronous=FULL``
    (``"fsync"``) or ``NORMAL`` (``"os"``), as the module docstring explains.
    """

    name = "sqlite"

    def __init__(
        self, path: str | Path = "data/zanzara.db", *, durability: Literal["fsync", "os"] = "fsync"
    ) -> None:
        self.path = Path(path)
        self.durability = durability
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="zanzara-sqlite", initializer=_yield_to_the_loop
        )
        self._db: sqlite3.Connection | None = None
        self._lock = LockFile(self.path.with_name(self.path.name + ".lock"), self.path)
        self._holders = Holders()
        # The statements of the batch being written, kept for its retries.
        self._batch: tuple[list[Op], list[Statement]] | None = None
        super().__init__()

    # -- lifecycle ----------------------------------------------------------------

    async def open(self) -> Snapshot:
        loop = asyncio.get_running_loop()
        try:
            snapshot = await loop.run_in_executor(self._executor, self._open_and_load)
        except BaseException as exc:
            # Nobody will close a store that did not open: let go of what it took.
            self._lock.release()
            self._executor.shutdown(wait=False)
            if isinstance(exc, OSError | sqlite3.Error):
                # A StoreError, not an OSError that the command would take for its port.
                raise StoreError(_open_failure(self.path, exc)) from exc
            raise
        self._writer.start()
        return snapshot

    def _open_and_load(self) -> Snapshot:  # errors: see _open_failure
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Before the database is touched: a second broker must not even migrate it.
        self._lock.acquire()
        # A locked database fails a batch after 2 s (then retried) instead of stalling acks for long.
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=2.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=" + ("FULL" if self.durability == "fsync" else "NORMAL"))
        db.execute("BEGIN IMMEDIATE")
        try:
            _migrate(db)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            db.close()
            raise
        self._db = db
        return self._load(db)

    def _load(self, db: sqlite3.Connection) -> Snapshot:
        snap = Snapshot()
        messages: dict[str, Message] = {}
        for row in db.execute("SELECT * FROM messages"):
            messages[row[0]] = _message(row)
        rows = db.execute(
            "SELECT client_id, expiry_interval, disconnected_at, will, max_queued, max_queued_bytes"
            " FROM sessions"
        )
        for cid, expiry, disconnected_at, will, max_queued, max_queued_bytes in rows:
            snap.sessions.append(
                SessionRecord(
                    client_id=cid,
                    expiry_interval=expiry,
                    disconnected_at=disconnected_at,
                    will=decode_will(bytes(will)) if will is not None else None,
                    max_queued=max_queued,
                    max_queued_bytes=max_queued_bytes,
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
            self._holders.hold(mid, cid)
            snap.queues.setdefault(cid, []).append(
                QueueRecord(
                    message=message,
                    qos=qos,
                    retain=bool(retain),
                    subscription_ids=tuple(json.loads(sub_ids)),
                    status=DeliveryStatus(state),
                    packet_id=pid,
                )
            )
        for cid, pid in db.execute("SELECT client_id, packet_id FROM incoming"):
            snap.incoming.setdefault(cid, set()).add(pid)
        for topic, mid in db.execute("SELECT topic, message_id FROM retained"):
            if mid in messages:
                snap.retained.append(messages[mid])
                self._holders.retain(topic, mid)
        orphans = [(mid,) for mid in messages if mid not in self._holders]
        if orphans:  # left by a version that collected them differently
            db.executemany("DELETE FROM messages WHERE id = ?", orphans)
        return snap

    async def close(self) -> None:
        self._receipts.due()
        await self._writer.close()
        loop = asyncio.get_running_loop()
        if self._db is not None:
            await loop.run_in_executor(self._executor, self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)
        self._lock.release()  # last: every write of ours is in the file by now

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
            if self._batch is None or self._batch[0] is not ops:
                # Translated once per batch (a retry reuses it): translating updates the holders.
                self._batch = (ops, self._translate(ops))
            await loop.run_in_executor(self._executor, self._apply, self._batch[1], receipts)
        except BaseException:
            self._receipts.give_back(receipts)
            raise
        self._batch = None

    def _translate(self, ops: list[Op]) -> list[Statement]:
        """The batch as SQL statements in order, the many alike ones as one executemany each."""
        folded = fold(ops, self._holders)
        plan: list[Statement] = []
        for op in folded.ordered:
            plan += _statements(op)
        if folded.new_messages:
            plan.append(("INSERT OR IGNORE INTO messages VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                         [_message_row(m) for m in folded.new_messages.values()]))  # fmt: skip
        plan += _queue_statements(folded.queues)
        if folded.freed_messages:
            plan.append(("DELETE FROM messages WHERE id = ?", [(mid,) for mid in folded.freed_messages]))
        return plan

    def _apply(self, plan: list[Statement], receipts: Steps | None) -> None:
        db = self._db
        if db is None:
            raise RuntimeError("store is closed")
        db.execute("BEGIN")
        try:
            for sql, rows in plan:
                if len(rows) == 1:
                    db.execute(sql, rows[0])
                else:
                    db.executemany(sql, rows)
            if receipts is not None:
                for status, outs in receipts.items():  # in DeliveryStatus order: later steps last
                    if outs:
                        db.executemany(_RECEIPT_STEP[status], _receipt_rows(status, outs))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise


def _statements(op: Ordered) -> list[Statement]:
    """The statements of one operation that folding kept in order."""
    match op:
        case IncomingPut(client_id, packet_id):
            return [("INSERT OR IGNORE INTO incoming VALUES (?, ?)", [(client_id, packet_id)])]
        case IncomingDelete(client_id, packet_id):
            return [("DELETE FROM incoming WHERE client_id = ? AND packet_id = ?", [(client_id, packet_id)])]
        case SessionPut(record):
            return [_session_put(record)]
        case FoldedSessionDelete(client_id, held):
            return _session_delete(client_id, held)
        case SubscriptionPut(entry):
            return [_subscription_put(entry)]
        case SubscriptionDelete(client_id, topic_filter):
            sql = "DELETE FROM subscriptions WHERE client_id = ? AND topic_filter = ?"
            return [(sql, [(client_id, topic_filter)])]
        case RetainedPut(message):
            return [("INSERT OR REPLACE INTO retained VALUES (?, ?)", [(message.topic, message.message_id)])]
        case RetainedDelete(topic):
            return [("DELETE FROM retained WHERE topic = ?", [(topic,)])]
        case ReceiptSteps():
            return []  # written in _apply, coalesced
        case ReceiptsPurge(before):
            sql = "DELETE FROM receipts WHERE message_id < ? AND updated_at < ?"
            return [(sql, [(first_message_id(before), before)])]
        case _:
            assert_never(op)


def _session_put(rec: SessionRecord) -> Statement:
    will = encode_will(rec.will) if rec.will is not None else None
    row = (
        rec.client_id,
        rec.expiry_interval,
        rec.disconnected_at,
        will,
        rec.max_queued,
        rec.max_queued_bytes,
    )
    return ("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?, ?, ?)", [row])


def _session_delete(client_id: str, held: list[str]) -> list[Statement]:
    plan: list[Statement] = [
        (f"DELETE FROM {table} WHERE client_id = ?", [(client_id,)])  # constants
        for table in ("sessions", "subscriptions", "incoming")
    ]
    if held:
        plan.append((_QUEUE_DELETE, [(mid, client_id) for mid in held]))
    return plan


def _subscription_put(e: SubscriptionEntry) -> Statement:
    return (
        "INSERT OR REPLACE INTO subscriptions VALUES (?,?,?,?,?,?,?)",
        [(e.client_id, e.topic_filter, e.qos, int(e.no_local), int(e.retain_as_published),
          e.subscription_id, e.share_group)],
    )  # fmt: skip


def _queue_statements(queues: dict[str, dict[str, Effect]]) -> list[Statement]:
    """The queues' net effects (``folding.py``): one executemany each for puts, updates, deletes."""
    puts: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
    removals: list[tuple[str, str]] = []
    for cid, entries in queues.items():
        for mid, effect in entries.items():
            if type(effect) is Delete:
                removals.append((mid, cid))
            elif type(effect) is Put:
                rec = effect.record
                sub_ids = json.dumps(rec.subscription_ids) if rec.subscription_ids else "[]"
                puts.append((cid, mid, effect.seq, rec.qos, int(rec.retain), sub_ids,
                             effect.status, effect.packet_id))  # fmt: skip
            elif type(effect) is OutgoingUpdate:  # the entry's last update
                updates.append((effect.status, effect.packet_id, mid, cid))
    plan: list[Statement] = []
    if puts:
        plan.append(("INSERT OR REPLACE INTO queue VALUES (?,?,?,?,?,?,?,?)", puts))
    if updates:
        plan.append((_QUEUE_UPDATE, updates))
    if removals:
        plan.append((_QUEUE_DELETE, removals))
    return plan


_PUBLISH = PacketType.PUBLISH


def _message_row(m: Message) -> tuple[Any, ...]:
    return (
        m.message_id, m.topic, m.payload, m.qos, int(m.retain),
        None if m.properties is EMPTY_PROPERTIES else encode_properties(m.properties, _PUBLISH),
        m.expires_at, m.priority, m.sender, m.created_at, m.collapse_key,
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


def _migrate(db: sqlite3.Connection) -> None:
    """Create the schema, or bring a database of an earlier version up to it (in the caller's transaction)."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"database schema version {version} is newer than this zanzara ({SCHEMA_VERSION})")
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    rebuilt = {t for v, names in _REBUILT.items() if v > version for t in names}
    old = [t for t in _REBUILT[2] if t in tables and t in rebuilt]
    if version < 3:
        # Indexes that version 3 does without: the in-memory holders replaced the first,
        # purging by message id the second.
        db.execute("DROP INDEX IF EXISTS queue_message")
        db.execute("DROP INDEX IF EXISTS receipts_updated")
    if old:
        for table in old:
            db.execute(f"ALTER TABLE {table} RENAME TO old_{table}")  # table names are constants
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    # Databases from 0.1.0 development builds lack these columns (the quotas came in version 3).
    for table, column, kind in (
        ("messages", "collapse_key", "TEXT"),
        ("sessions", "will", "BLOB"),
        ("sessions", "max_queued", "INTEGER"),
        ("sessions", "max_queued_bytes", "INTEGER"),
    ):
        if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")  # constants only
    for table in old:
        db.execute(f"INSERT OR IGNORE INTO {table} SELECT * FROM old_{table}")
        db.execute(f"DROP TABLE old_{table}")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _open_failure(path: Path, exc: OSError | sqlite3.Error) -> str:
    """One line saying which file or folder could not be used, and why."""
    where = os.path.abspath(path)
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        return (
            f"database {where} is not a SQLite database or is damaged ({exc}):"
            " move it away or set storage.path"
        )
    if isinstance(exc, FileExistsError | NotADirectoryError) and exc.filename is not None:
        return f"{os.path.abspath(exc.filename)} is not a directory, so database {where} cannot be there"
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"cannot use {os.path.abspath(exc.filename)} for database {where}: {exc.strerror or exc}"
    return f"cannot open database {where}: {exc}"
