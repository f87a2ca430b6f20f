"""The memory back-end passes the store contract ("restarts" keep one MemoryData)."""

from __future__ import annotations

import pytest

from zanzara.backends.memory import MemoryData, MemoryStore

from .contract import Backend, StoreContract, count_memory


@pytest.fixture
def backend() -> Backend:
    data = MemoryData()
    return Backend(make=lambda: MemoryStore(data), count_messages=count_memory)


class TestMemoryStore(StoreContract):
    pass
