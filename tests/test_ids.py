"""Message ids are ULIDs: 26 Crockford base-32 digits, time first, increasing within a broker."""

from __future__ import annotations

import time

from zanzara import ids

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def reference(ms: int, rand: int) -> str:
    # The ULID spec's encoding, digit by digit.
    value = (ms << 80) | rand
    return "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def test_encoding_matches_the_ulid_spec() -> None:
    for _ in range(2000):
        mid = ids.new_message_id()
        assert mid == reference(ids._last_ms, ids._last_rand)
        assert len(mid) == 26 and set(mid) <= set(CROCKFORD)


def test_ids_increase_and_carry_the_time() -> None:
    before = time.time_ns() // 1_000_000
    got = [ids.new_message_id() for _ in range(5000)]
    assert got == sorted(got) and len(set(got)) == len(got)
    ms = int("".join(str(CROCKFORD.index(c)) and f"{CROCKFORD.index(c):05b}" for c in got[0]), 2) >> 80
    assert before <= ms <= time.time_ns() // 1_000_000
