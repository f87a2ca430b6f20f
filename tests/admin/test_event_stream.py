"""The admin API's event stream is bounded per reader: a reader that falls behind misses events
(and is told how many) while the broker goes on at its own pace."""

from __future__ import annotations

import asyncio
import contextlib
import json

from zanzara.admin.app import _event_stream
from zanzara.core import Core
from zanzara.events import ClientConnected
from zanzara.hooks import ClientInfo


async def test_a_reader_that_falls_behind_is_told_what_it_missed() -> None:
    core = Core()
    stream = _event_stream(core, ("client_connected",), size=3)
    assert (await anext(stream)).startswith(":")  # listening from here on
    for n in range(10):  # the broker emits without waiting for the reader
        core.events.emit(ClientConnected(client=ClientInfo(client_id=f"c{n}"), session_present=False))
    await asyncio.sleep(0.05)  # the hub's task hands them to the stream's bounded queue
    first = await anext(stream)
    assert first.startswith("event: missed\n")
    assert json.loads(first.split("data: ", 1)[1]) == {"count": 7}
    got = [json.loads((await anext(stream)).split("data: ", 1)[1])["client_id"] for _ in range(3)]
    assert got == ["c0", "c1", "c2"]
    await stream.aclose()
    assert not core.events.active  # the reader's listener is gone with it


async def test_the_stream_filters_by_name() -> None:
    core = Core()
    stream = _event_stream(core, ("client_disconnected",), size=10)
    await anext(stream)
    core.events.emit(ClientConnected(client=ClientInfo(client_id="c"), session_present=False))
    await asyncio.sleep(0.05)
    reader = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.05)
    assert not reader.done()  # nothing it asked for came
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    await stream.aclose()
    assert not core.events.active
