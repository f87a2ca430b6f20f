"""What a connection needs from its transport: the subset of ``asyncio.Transport`` it uses.

An asyncio transport (TCP, TLS; uvloop's too, which are not ``asyncio.Transport``
subclasses) satisfies it, and so does the WebSocket adapter in ``websocket.py``.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["ByteTransport"]


class ByteTransport(Protocol):
    """What a connection needs from its transport: the subset of ``asyncio.Transport`` it uses."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def is_closing(self) -> bool: ...

    def can_write_eof(self) -> bool: ...

    def write_eof(self) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def get_write_buffer_size(self) -> int: ...

    def get_extra_info(self, name: str, default: Any = None) -> Any: ...
