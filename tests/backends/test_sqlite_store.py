"""The SQLite back-end passes the store contract, and old databases are migrated."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from zanzara.backends.sqlite import SqliteStore
from zanzara.storage import Store

from contract import Backend, StoreContract, msg


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
