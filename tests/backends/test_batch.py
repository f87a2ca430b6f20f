"""Group-commit batches: the linger of uncommitted writes, commits, failures."""

from __future__ import annotations

import asyncio

from zanzara.backends.batch import LINGER, BatchWriter
from zanzara.backends.ops import Op, SessionPut
from zanzara.storage import SessionRecord


def session_put(client_id: str) -> SessionPut:
    return SessionPut(SessionRecord(client_id=client_id, expiry_interval=60))


async def test_writes_nobody_commits_are_written_after_the_linger() -> None:
    written: list[list[Op]] = []

    async def write(ops: list[Op]) -> None:
        written.append(ops)

    writer = BatchWriter("test", write)
    writer.start()
    writer.add(session_put("a"))
    writer.add(session_put("b"))
    await asyncio.sleep(LINGER * 4)
    assert written == [[session_put("a"), session_put("b")]]
    await writer.close()


async def test_commits_fail_at_once_while_an_earlier_batch_is_being_retried() -> None:
    """A failing batch nobody waited for must not make later commits wait for the store's return."""
    from zanzara.errors import StoreError

    up = asyncio.Event()

    async def write(ops: list[Op]) -> None:
        if not up.is_set():
            raise OSError("store down")

    writer = BatchWriter("test", write)
    writer.start()
    writer.add(session_put("lingering"))  # written after the linger, fails, is retried
    await asyncio.sleep(LINGER * 3)
    assert writer.failing
    writer.add(session_put("later"))
    try:
        async with asyncio.timeout(5):
            await writer.commit()
    except StoreError:
        pass
    else:
        raise AssertionError("the commit succeeded while the store was down")
    up.set()
    async with asyncio.timeout(5):
        while writer.failing:
            await asyncio.sleep(0.05)
        await writer.commit()
    await writer.close()
