"""The Redis back-end passes the store contract against a real redis-server."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis import Redis

from zanzara.backends.receipts import Steps
from zanzara.backends.redis import RedisStore, _receipt
from zanzara.errors import StoreError, StoreInUse
from zanzara.session import Delivery
from zanzara.storage import DeliveryStatus, QueueRecord, Receipt, SessionRecord, Store, overtaken

from .contract import Backend, StoreContract, msg
from redisserver import RedisServer

_prefixes = itertools.count()


@pytest.fixture
def backend(redis_server: RedisServer) -> Backend:
    prefix = f"contract{next(_prefixes)}:"  # each test its own key space in one server

    async def count(store: Store) -> int:
        await store.commit()
        with Redis.from_url(redis_server.url) as r:
            return len(list(r.scan_iter(f"{prefix}m:*")))

    return Backend(make=lambda: RedisStore(redis_server.url, prefix=prefix), count_messages=count)


class TestRedisStore(StoreContract):
    pass


async def test_unreachable_redis_fails_at_open_with_its_url() -> None:
    store = RedisStore("redis://127.0.0.1:1/0", timeout=0.5)
    with pytest.raises(StoreError, match=r"redis store at redis://127\.0\.0\.1:1/0 unavailable"):
        await store.open()


async def test_a_stopped_redis_fails_commits_then_recovers(tmp_path: Path) -> None:
    """Redis stopped: commits fail (so nothing is acknowledged); restarted: the same batch is written."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        store = RedisStore(server.url, timeout=0.5)
        await store.open()
        store.session_put(SessionRecord(client_id="a", expiry_interval=100))
        await store.commit()
        server.stop()
        store.outgoing_enqueue("a", QueueRecord(message=msg(1), qos=1, retain=False))
        with pytest.raises(StoreError, match="redis store unavailable"):
            await store.commit()
        server.start()  # same port, same directory: the AOF brings back what was committed
        store.outgoing_enqueue("a", QueueRecord(message=msg(2), qos=1, retain=False))
        for _ in range(100):  # the writer retries with backoff (at most 2 s apart)
            try:
                await store.commit()
                break
            except StoreError:
                continue
        await store.close()
        store = RedisStore(server.url)
        snap = await store.open()
        assert [r.message.message_id for r in snap.queues["a"]] == ["m0001", "m0002"]
        await store.close()
    finally:
        server.stop()


async def test_fsync_durability_warns_when_redis_does_not_fsync(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    with Redis.from_url(redis_server.url) as r:
        r.config_set("appendfsync", "everysec")
    try:
        store = RedisStore(redis_server.url, prefix="warn:")
        await store.open()
        await store.close()
    finally:
        with Redis.from_url(redis_server.url) as r:
            r.config_set("appendfsync", "always")
    assert "does not fsync every write" in caplog.text


async def test_a_flushed_script_cache_is_reloaded(redis_server: RedisServer) -> None:
    """Batches run as one Lua script by its SHA; a Redis that forgot it gets it again."""
    store = RedisStore(redis_server.url, prefix="flushed:")
    await store.open()
    store.session_put(SessionRecord(client_id="a", expiry_interval=100))
    await store.commit()
    with Redis.from_url(redis_server.url) as r:
        r.script_flush()
        assert r.script_exists(store._apply_sha) == [False]
    store.outgoing_enqueue("a", QueueRecord(message=msg(1), qos=1, retain=False))
    await store.commit()
    await store.close()
    store = RedisStore(redis_server.url, prefix="flushed:")
    snap = await store.open()
    assert [r.message for r in snap.queues["a"]] == [msg(1)]
    await store.close()


async def test_a_second_store_on_the_same_prefix_is_refused_until_the_first_closes(
    redis_server: RedisServer,
) -> None:
    first = RedisStore(redis_server.url, prefix="owned:")
    await first.open()
    holder = rf"pid {os.getpid()} on host {re.escape(socket.gethostname())}"
    with pytest.raises(StoreInUse, match=rf"prefix 'owned:' is in use by another broker \({holder}\)"):
        await RedisStore(redis_server.url, prefix="owned:").open()
    other = RedisStore(redis_server.url, prefix="owned-too:")  # another prefix: another owner
    await other.open()
    await other.close()
    await first.close()
    with Redis.from_url(redis_server.url) as r:
        assert r.get("owned:lease") is None  # released on close, not left to expire
    again = RedisStore(redis_server.url, prefix="owned:")
    await again.open()
    await again.close()


async def _until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "not within the deadline"
        await asyncio.sleep(0.02)


async def test_a_lapsed_lease_is_taken_again_and_a_taken_one_is_reported(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore(redis_server.url, prefix="lapse:", lease=1.0)  # renewed every 1/3 s
    await store.open()
    with Redis.from_url(redis_server.url) as r:
        ours = r.get("lapse:lease")
        assert json.loads(ours)["pid"] == os.getpid()
        r.delete("lapse:lease")  # as if renewals had stalled past its expiry
        await _until(lambda: r.get("lapse:lease") == ours)
        assert "had lapsed; nobody else took it" in caplog.text
        someone = json.dumps({"token": "t", "host": "elsewhere", "pid": 99})
        r.set("lapse:lease", someone, px=60_000)  # another broker started meanwhile
        await _until(lambda: "LOST the lease on redis key prefix 'lapse:'" in caplog.text)
        assert "another broker (pid 99 on host elsewhere)" in caplog.text
        await store.close()
        assert r.get("lapse:lease") == someone.encode()  # not ours: closing leaves it alone
        r.delete("lapse:lease")


@given(
    status=st.sampled_from(DeliveryStatus),
    times=st.lists(
        st.none() | st.floats(min_value=0.001, max_value=1e12, allow_nan=False, allow_infinity=False),
        min_size=4,
        max_size=4,
    ),
    reason=st.none() | st.text(),
)
def test_a_receipt_is_stored_as_the_json_of_its_fields(
    status: DeliveryStatus, times: list[float | None], reason: str | None
) -> None:
    # The value is formatted by hand (json.dumps per delivery was a third of a Redis drain):
    # it must be what json.dumps writes (compact), and read back as Receipt.of(status, out).
    queued, sent, acked, finished = times
    out = Delivery(
        message=msg(1), qos=1, retain=False, client_id="c", queued_at=queued or 0.0, sent_at=sent,
        acknowledged_at=acked, finished_at=finished, reason=reason,
    )  # fmt: skip
    store = RedisStore("redis://127.0.0.1:1/0")  # not connected: only its commands are built
    steps: Steps = {s: [] for s in DeliveryStatus}
    steps[status].append(out)
    expected = Receipt.of(status, out)
    cmds = store._receipt_commands(steps)
    if overtaken(status, out):
        assert cmds == []
        return
    [(_, key, cid, value), (_, _, score, member)] = cmds
    assert (key, cid, member) == (store._k("r", "m0001"), "c", "m0001 c")
    assert value == json.dumps([status.value, queued, sent, acked, finished, reason], separators=(",", ":"))
    assert _receipt("m0001", "c", value.encode()) == expected
    assert float(score) == expected.updated_at
