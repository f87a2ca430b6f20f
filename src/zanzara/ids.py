"""Message ids: ULIDs (26 characters, sortable by creation time, globally unique).

48 bits of milliseconds since the epoch and 80 random bits, in Crockford's
base 32; within one millisecond the random part is incremented, so ids from
one broker sort in publish order.
"""

from __future__ import annotations

import base64
import os
import time

__all__ = ["first_message_id", "new_message_id"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# base64's RFC 4648 base 32 runs in C; its digits map one to one onto Crockford's.
_TO_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET)
# The last four digits are the low 20 bits of the random part: while an increment stays within
# them, an id is the previous id's first 22 digits and two table lookups (a publish burst
# makes many ids per millisecond).
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_LOW = (1 << 20) - 1
_last_ms = 0
_last_rand = 0
_prefix = ""


def new_message_id() -> str:
    global _last_ms, _last_rand, _prefix
    ms = time.time_ns() // 1_000_000
    if ms <= _last_ms:
        rand = _last_rand + 1
        low = rand & _LOW
        if low:  # no carry out of the last four digits
            _last_rand = rand
            return _prefix + _PAIRS[low >> 10] + _PAIRS[low & 1023]
        ms = _last_ms
        rand &= (1 << 80) - 1
    else:
        rand = int.from_bytes(os.urandom(10), "big")
    _last_ms, _last_rand = ms, rand
    ulid = _encode(ms, rand)
    _prefix = ulid[:22]
    return ulid


def first_message_id(seconds: float) -> str:
    """The smallest id of a message created at ``seconds`` (wall clock): every id made
    earlier sorts below it."""
    return _encode(int(seconds * 1000), 0)


def _encode(ms: int, rand: int) -> str:
    # The 128-bit value as 130 bits (two leading zeros) is 26 base-32 digits: placed at the top
    # of 160 bits (20 bytes, 32 digits), they are the first 26 digits of the encoding.
    value = ((ms << 80) | rand) << 30
    return base64.b32encode(value.to_bytes(20, "big"))[:26].decode().translate(_TO_CROCKFORD)
