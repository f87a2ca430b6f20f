"""Message ids: ULIDs (26 characters, sortable by creation time, globally unique).

48 bits of milliseconds since the epoch and 80 random bits, in Crockford's
base 32; within one millisecond the random part is incremented, so ids from
one broker sort in publish order.
"""

from __future__ import annotations

import os
import time

__all__ = ["new_message_id"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_last_ms = 0
_last_rand = 0


def new_message_id() -> str:
    global _last_ms, _last_rand
    ms = time.time_ns() // 1_000_000
    if ms <= _last_ms:
        ms = _last_ms
        _last_rand = (_last_rand + 1) & ((1 << 80) - 1)
    else:
        _last_ms = ms
        _last_rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | _last_rand
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))
